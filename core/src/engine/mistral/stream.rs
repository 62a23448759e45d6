//! A reply streamed from mistral.rs: the request, its text pieces, cancellation and stats.

use super::*;

pub(super) fn role(role: Role) -> TextMessageRole {
    match role {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    }
}

pub(super) async fn stream_reply(
    model: &Model,
    messages: Vec<PromptMessage>,
    sampling: Sampling,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<Result<GenerationEvent, EngineError>>,
) -> Result<(FinishReason, GenerationStats), EngineError> {
    let mut request = RequestBuilder::new();
    for m in &messages {
        request = request.add_message(role(m.role), &m.content);
    }
    let repetition_penalty = (sampling.repetition_penalty > 0.0
        && (sampling.repetition_penalty - 1.0).abs() > f32::EPSILON)
        .then_some(sampling.repetition_penalty);
    let params = if sampling.greedy {
        SamplingParams { max_len: Some(sampling.max_tokens), repetition_penalty, ..SamplingParams::deterministic() }
    } else {
        SamplingParams {
            temperature: Some(sampling.temperature),
            top_p: Some(sampling.top_p),
            max_len: Some(sampling.max_tokens),
            repetition_penalty,
            ..SamplingParams::neutral()
        }
    };
    let request = request.set_sampling(params);

    let started = Instant::now();
    let mut stats = GenerationStats::default();
    let mut first_token_at: Option<Instant> = None;
    let mut last_token_at = started;
    let mut stream = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Ok((FinishReason::Cancelled, stats)),
        s = model.stream_chat_request(request) => s.map_err(|e| EngineError::Generation(e.to_string()))?,
    };
    loop {
        let response = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                // Dropping the stream closes the channel; the engine then ends the sequence.
                drop(stream);
                finish_stats(&mut stats, first_token_at, last_token_at);
                return Ok((FinishReason::Cancelled, stats));
            }
            r = stream.next() => r,
        };
        let Some(response) = response else {
            return Err(EngineError::EngineStopped);
        };
        match response {
            Response::Chunk(chunk) => {
                let now = Instant::now();
                let Some(choice) = chunk.choices.into_iter().next() else { continue };
                stats.completion_tokens += 1;
                last_token_at = now;
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    if first_token_at.is_none() {
                        first_token_at = Some(now);
                        stats.time_to_first_token = Some(now - started);
                    }
                    if tx.send(Ok(GenerationEvent::Text(text))).await.is_err() {
                        // Nobody is listening any more: same as a cancel.
                        return Ok((FinishReason::Cancelled, stats));
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    if let Some(usage) = chunk.usage {
                        stats.prompt_tokens = usage.prompt_tokens;
                        stats.completion_tokens = usage.completion_tokens;
                    }
                    finish_stats(&mut stats, first_token_at, last_token_at);
                    let reason = match reason.as_str() {
                        "length" => FinishReason::Length,
                        "canceled" => FinishReason::Cancelled,
                        _ => FinishReason::Stop,
                    };
                    return Ok((reason, stats));
                }
            }
            Response::ModelError(message, _) | Response::CompletionModelError(message, _) => {
                return Err(EngineError::Generation(message));
            }
            Response::InternalError(e) => return Err(EngineError::Generation(e.to_string())),
            Response::ValidationError(e) => return Err(EngineError::Generation(e.to_string())),
            Response::Done(done) => {
                stats.prompt_tokens = done.usage.prompt_tokens;
                stats.completion_tokens = done.usage.completion_tokens;
                finish_stats(&mut stats, first_token_at, last_token_at);
                return Ok((FinishReason::Stop, stats));
            }
            _ => {}
        }
    }
}
