//! GGUF → Hugging Face folder: a Llama-architecture GGUF file written back as the folder that
//! safetensors loaders (and in-situ quantization) read — `model.safetensors` with the weights
//! dequantized to BF16 or F32, `config.json`, `tokenizer.json`, `tokenizer_config.json` (with
//! the chat template) and `generation_config.json`, all derived from the GGUF's metadata.
//!
//! llama.cpp stores the query and key projections permuted for its interleaved RoPE; they are
//! permuted back here, so the folder is what the original Hugging Face checkpoint looked like.
//! Applied to the starter model it gives a real safetensors model to test the ISQ path with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{DType, Device, Tensor};
use serde_json::json;

/// Errors from converting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The input could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Not a model this converter handles.
    #[error("{path} cannot be converted: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing the folder failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The weights' type in the written folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightType {
    /// bfloat16: half the size, what Meta publishes.
    #[default]
    Bf16,
    /// float32: exact for every GGUF quantization.
    F32,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Converted {
    /// The folder.
    pub dir: PathBuf,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of `model.safetensors`.
    pub weight_bytes: u64,
}

struct Meta<'a>(&'a gguf_file::Content, String);

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&gguf_file::Value> {
        self.0.metadata.get(&format!("{}.{key}", self.1)).or_else(|| self.0.metadata.get(key))
    }
    fn u32(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(|v| v.to_u32().ok().or_else(|| v.to_u64().ok().map(|n| n as u32)))
    }
    fn f32(&self, key: &str) -> Option<f32> {
        self.get(key).and_then(|v| v.to_f32().ok())
    }
}

/// Converts the GGUF file `input` into a Hugging Face folder `out` (created; must be empty or
/// absent).
pub fn convert_gguf(input: &Path, out: &Path, weights: WeightType) -> Result<Converted, ConvertError> {
    let read_err = |reason: String| ConvertError::Read { path: input.to_path_buf(), reason };
    let unsupported = |reason: String| ConvertError::Unsupported { path: input.to_path_buf(), reason };
    let write_err = |path: &Path, reason: String| ConvertError::Write { path: path.to_path_buf(), reason };

    let mut file = std::fs::File::open(input).map_err(|e| read_err(e.to_string()))?;
    let content =
        gguf_file::Content::read(&mut file).map_err(|e| read_err(format!("not a GGUF file ({})", first_line(&e))))?;
    let arch =
        content.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    if arch != "llama" {
        return Err(unsupported(format!("architecture `{arch}`; only llama models are converted")));
    }
    let meta = Meta(&content, arch);
    let need = |key: &str| meta.u32(key).ok_or_else(|| unsupported(format!("metadata `llama.{key}` is missing")));
    let layers = need("block_count")?;
    let hidden = need("embedding_length")?;
    let heads = need("attention.head_count")?;
    let kv_heads = meta.u32("attention.head_count_kv").unwrap_or(heads);
    let intermediate = need("feed_forward_length")?;
    let context = meta.u32("context_length").unwrap_or(4096);
    let eps = meta.f32("attention.layer_norm_rms_epsilon").unwrap_or(1e-5);
    let theta = meta.f32("rope.freq_base").unwrap_or(10_000.0);

    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(write_err(out, "the folder exists and is not empty; choose a new one".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e.to_string()))?;

    // Weights, renamed to the Hugging Face Llama names; Q and K permuted back.
    let dtype = match weights {
        WeightType::Bf16 => DType::BF16,
        WeightType::F32 => DType::F32,
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let Some(hf_name) = hf_name(name) else {
            return Err(unsupported(format!("unexpected tensor `{name}`")));
        };
        let tensor = content
            .tensor(&mut file, name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .map_err(|e| read_err(format!("tensor `{name}`: {}", first_line(&e))))?;
        let tensor = if name.ends_with("attn_q.weight") {
            unpermute(&tensor, heads)
        } else if name.ends_with("attn_k.weight") {
            unpermute(&tensor, kv_heads)
        } else {
            Ok(tensor)
        }
        .and_then(|t| t.to_dtype(dtype))
        .map_err(|e| read_err(format!("tensor `{name}`: {}", first_line(&e))))?;
        tensors.insert(hf_name, tensor);
    }
    let tied = !tensors.contains_key("lm_head.weight");
    let vocab = tensors
        .get("model.embed_tokens.weight")
        .map(|t| t.dims()[0])
        .ok_or_else(|| unsupported("no token embedding (`token_embd.weight`)".into()))?;
    let weights_path = out.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights_path).map_err(|e| write_err(&weights_path, first_line(&e)))?;

    // The tokenizer, from the GGUF's vocabulary and merges.
    let tokenizer = tokenizers::Tokenizer::from_gguf(&content)
        .map_err(|e| unsupported(format!("tokenizer: {}", first_line(&e))))?;
    let tokenizer_path = out.join("tokenizer.json");
    let mut tokenizer_json: serde_json::Value = tokenizer
        .to_string(false)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or_else(|| unsupported("the tokenizer cannot be written as JSON".into()))?;
    let add_space_prefix =
        content.metadata.get("tokenizer.ggml.add_space_prefix").and_then(|v| v.to_bool().ok()).unwrap_or(false);
    let pre = content.metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    match_llama_cpp_pre_tokenizer(&mut tokenizer_json, add_space_prefix, &pre);
    let text = serde_json::to_string(&tokenizer_json).unwrap_or_default();
    std::fs::write(&tokenizer_path, text).map_err(|e| write_err(&tokenizer_path, e.to_string()))?;
    let token = |key: &str| -> (Option<u32>, Option<String>) {
        let id = content.metadata.get(key).and_then(|v| v.to_u32().ok());
        let text = id.and_then(|id| tokenizer.id_to_token(id));
        (id, text)
    };
    let (bos_id, bos) = token("tokenizer.ggml.bos_token_id");
    let (eos_id, eos) = token("tokenizer.ggml.eos_token_id");
    let chat_template = content.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();

    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden / heads,
        "hidden_act": "silu",
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "max_position_embeddings": context,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": match weights { WeightType::Bf16 => "bfloat16", WeightType::F32 => "float32" },
    });
    let tokenizer_config = json!({
        "bos_token": bos,
        "eos_token": eos,
        "chat_template": chat_template,
        "model_max_length": context,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    let generation_config = json!({ "bos_token_id": bos_id, "eos_token_id": eos_id });
    for (file, value) in [
        ("config.json", config),
        ("tokenizer_config.json", tokenizer_config),
        ("generation_config.json", generation_config),
    ] {
        let path = out.join(file);
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        std::fs::write(&path, text).map_err(|e| write_err(&path, e.to_string()))?;
    }
    let weight_bytes = std::fs::metadata(&weights_path).map(|m| m.len()).unwrap_or(0);
    Ok(Converted { dir: out.to_path_buf(), tensors: tensors.len(), weight_bytes })
}

/// Makes the tokenizer split text as llama.cpp does for this model: no space added before the
/// text unless the GGUF asks for one (candle's conversion always adds it), and digits one by
/// one for the pre-tokenizers that do so (`smollm`, `llama3`-style ones keep their regex).
fn match_llama_cpp_pre_tokenizer(tokenizer: &mut serde_json::Value, add_space_prefix: bool, pre: &str) {
    fn set_prefix_space(value: &mut serde_json::Value, on: bool) {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("type").and_then(|t| t.as_str()) == Some("ByteLevel") && map.contains_key("add_prefix_space")
                {
                    map.insert("add_prefix_space".into(), serde_json::Value::Bool(on));
                }
                map.values_mut().for_each(|v| set_prefix_space(v, on));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| set_prefix_space(v, on)),
            _ => {}
        }
    }
    for key in ["pre_tokenizer", "post_processor", "decoder"] {
        set_prefix_space(&mut tokenizer[key], add_space_prefix);
    }
    if pre == "smollm" {
        let byte_level = tokenizer["pre_tokenizer"].take();
        tokenizer["pre_tokenizer"] = json!({
            "type": "Sequence",
            "pretokenizers": [{ "type": "Digits", "individual_digits": true }, byte_level],
        });
    }
}

/// candle's errors carry a backtrace after their first line when `RUST_BACKTRACE` is set.
pub(crate) fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// The Hugging Face name of a GGUF Llama tensor.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_owned());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: u32 = layer.parse().ok()?;
    let hf = match part {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Undoes llama.cpp's permutation of a Q or K projection (rows grouped per head as pairs for
/// interleaved RoPE) back to the Hugging Face layout (halves).
fn unpermute(t: &Tensor, heads: u32) -> candle_core::Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    let heads = heads as usize;
    t.reshape((heads, rows / heads / 2, 2, cols))?.transpose(1, 2)?.contiguous()?.reshape((rows, cols))
}

/// Writes a BERT sentence-transformers folder (`config.json`, `tokenizer.json`,
/// `model.safetensors`) as one GGUF file `out` that llama.cpp runs as an embedding model: the
/// same f32 weights under llama.cpp's tensor names, its WordPiece vocabulary spelling (a
/// word-start piece gains a U+2581, a continuation loses its `##`) and `pooling` (`None`: as
/// the folder's `1_Pooling/config.json` says, else mean).
/// Search runs the starter embedding model this way (`search_models::load_resolved`): llama.cpp
/// embeds several times faster than candle on a CPU, with the same vectors.
///
/// Only what llama.cpp reads the same way is converted: an uncased WordPiece BERT with absolute
/// positions (others are refused as unsupported and stay on candle). Written to a temporary
/// name beside `out`, then renamed, so a reader never meets half a file.
pub fn bert_to_gguf(dir: &Path, out: &Path, pooling: Option<crate::catalog::Pooling>) -> Result<(), ConvertError> {
    use candle_core::quantized::{GgmlDType, QTensor};
    use gguf_file::Value;

    let read_err = |path: &Path, reason: String| ConvertError::Read { path: path.to_path_buf(), reason };
    let unsupported = |reason: &str| ConvertError::Unsupported { path: dir.to_path_buf(), reason: reason.to_owned() };
    let json = |name: &str| -> Result<serde_json::Value, ConvertError> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| read_err(&path, e.to_string()))
    };
    let config = json("config.json")?;
    let tokenizer = json("tokenizer.json")?;
    let number = |key: &str| config[key].as_u64().filter(|&n| n > 0 && n <= 1 << 20).map(|n| n as u32);
    if config["model_type"] != "bert"
        || config.get("position_embedding_type").is_some_and(|p| p != "absolute")
        || config.get("hidden_act").is_some_and(|a| a != "gelu")
    {
        return Err(unsupported("not a BERT model with absolute positions and GELU"));
    }
    if tokenizer["model"]["type"] != "WordPiece" || tokenizer["normalizer"]["lowercase"] != true {
        return Err(unsupported("its tokenizer is not an uncased WordPiece one"));
    }
    let (Some(layers), Some(hidden), Some(ffn), Some(heads), Some(positions)) = (
        number("num_hidden_layers"),
        number("hidden_size"),
        number("intermediate_size"),
        number("num_attention_heads"),
        number("max_position_embeddings"),
    ) else {
        return Err(unsupported("config.json lacks the model's sizes"));
    };
    let eps = config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32;
    let token_types = number("type_vocab_size").unwrap_or(2);
    let cls = match pooling {
        Some(pooling) => pooling == crate::catalog::Pooling::Cls,
        None => std::fs::read_to_string(dir.join("1_Pooling/config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["pooling_mode_cls_token"] == true),
    };

    // The vocabulary, by id, as llama.cpp spells it.
    let vocab =
        tokenizer["model"]["vocab"].as_object().ok_or_else(|| unsupported("tokenizer.json has no vocabulary"))?;
    let specials: std::collections::HashSet<&str> = tokenizer["added_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["special"] == true)
        .filter_map(|t| t["content"].as_str())
        .collect();
    let mut by_id: Vec<Option<&str>> = vec![None; vocab.len()];
    for (token, id) in vocab {
        let slot = id
            .as_u64()
            .and_then(|i| by_id.get_mut(i as usize))
            .ok_or_else(|| unsupported("vocabulary ids have gaps"))?;
        *slot = Some(token);
    }
    let mut tokens = Vec::with_capacity(by_id.len());
    let mut kinds = Vec::with_capacity(by_id.len());
    for token in by_id {
        let token = token.ok_or_else(|| unsupported("vocabulary ids have gaps"))?;
        let special = specials.contains(token);
        tokens.push(Value::String(if special {
            token.to_owned()
        } else if let Some(rest) = token.strip_prefix("##") {
            rest.to_owned()
        } else {
            format!("\u{2581}{token}")
        }));
        // llama.cpp's token types: 1 normal, 3 control.
        kinds.push(Value::I32(if special { 3 } else { 1 }));
    }
    let id_of = |token: &str| vocab.get(token).and_then(serde_json::Value::as_u64).map(|i| Value::U32(i as u32));

    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("bert".into())),
        ("general.name", Value::String(name)),
        ("general.file_type", Value::U32(0)),
        ("bert.context_length", Value::U32(positions)),
        ("bert.embedding_length", Value::U32(hidden)),
        ("bert.feed_forward_length", Value::U32(ffn)),
        ("bert.block_count", Value::U32(layers)),
        ("bert.attention.head_count", Value::U32(heads)),
        ("bert.attention.layer_norm_epsilon", Value::F32(eps)),
        ("bert.attention.causal", Value::Bool(false)),
        ("bert.pooling_type", Value::U32(if cls { 2 } else { 1 })),
        ("tokenizer.ggml.model", Value::String("bert".into())),
        ("tokenizer.ggml.token_type_count", Value::U32(token_types)),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(kinds)),
    ];
    for (key, token) in [
        ("tokenizer.ggml.bos_token_id", "[CLS]"),
        ("tokenizer.ggml.eos_token_id", "[SEP]"),
        ("tokenizer.ggml.seperator_token_id", "[SEP]"),
        ("tokenizer.ggml.unknown_token_id", "[UNK]"),
        ("tokenizer.ggml.padding_token_id", "[PAD]"),
        ("tokenizer.ggml.mask_token_id", "[MASK]"),
    ] {
        if let Some(id) = id_of(token) {
            metadata.push((key, id));
        }
    }

    let weights_path = dir.join("model.safetensors");
    let weights = candle_core::safetensors::load(&weights_path, &Device::Cpu)
        .map_err(|e| read_err(&weights_path, first_line(&e)))?;
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for hf in names {
        let plain = hf.strip_prefix("bert.").unwrap_or(hf);
        if plain == "embeddings.position_ids" || plain.starts_with("pooler.") {
            continue;
        }
        let Some(name) = bert_gguf_name(plain) else {
            return Err(unsupported(&format!("unexpected tensor `{hf}`")));
        };
        let tensor = weights[hf]
            .to_dtype(DType::F32)
            .and_then(|t| QTensor::quantize(&t, GgmlDType::F32))
            .map_err(|e| read_err(&weights_path, format!("tensor `{hf}`: {}", first_line(&e))))?;
        tensors.push((name, tensor));
    }

    let partial = out.with_extension(format!("partial-{}", std::process::id()));
    let write_err = |e: &dyn std::fmt::Display| ConvertError::Write { path: out.to_path_buf(), reason: e.to_string() };
    let written = (|| -> Result<(), ConvertError> {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| write_err(&e))?;
        }
        let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(|e| write_err(&e))?);
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut file, &metadata, &tensors).map_err(|e| write_err(&first_line(&e)))?;
        let file = file.into_inner().map_err(|e| write_err(&e))?;
        file.sync_all().map_err(|e| write_err(&e))?;
        std::fs::rename(&partial, out).map_err(|e| write_err(&e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// llama.cpp's name for a BERT tensor of a Hugging Face checkpoint (without its `bert.` prefix).
fn bert_gguf_name(hf: &str) -> Option<String> {
    let (stem, kind) = hf.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let base = match stem {
        "embeddings.word_embeddings" => "token_embd".to_owned(),
        "embeddings.position_embeddings" => "position_embd".to_owned(),
        "embeddings.token_type_embeddings" => "token_types".to_owned(),
        "embeddings.LayerNorm" => "token_embd_norm".to_owned(),
        _ => {
            let rest = stem.strip_prefix("encoder.layer.")?;
            let (layer, part) = rest.split_once('.')?;
            let layer: u32 = layer.parse().ok()?;
            let part = match part {
                "attention.self.query" => "attn_q",
                "attention.self.key" => "attn_k",
                "attention.self.value" => "attn_v",
                "attention.output.dense" => "attn_output",
                "attention.output.LayerNorm" => "attn_output_norm",
                "intermediate.dense" => "ffn_up",
                "output.dense" => "ffn_down",
                "output.LayerNorm" => "layer_output_norm",
                _ => return None,
            };
            format!("blk.{layer}.{part}")
        }
    };
    Some(format!("{base}.{kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hugging_face_names() {
        assert_eq!(hf_name("blk.12.attn_q.weight").as_deref(), Some("model.layers.12.self_attn.q_proj.weight"));
        assert_eq!(hf_name("blk.0.ffn_norm.weight").as_deref(), Some("model.layers.0.post_attention_layernorm.weight"));
        assert_eq!(hf_name("token_embd.weight").as_deref(), Some("model.embed_tokens.weight"));
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn the_permutation_is_undone() {
        // One head of dimension 4 over 1 column: Hugging Face rows [a0, a1, b0, b1] (two halves)
        // are stored by llama.cpp interleaved as [a0, b0, a1, b1].
        let gguf = Tensor::new(&[[0f32], [2.], [1.], [3.]], &Device::Cpu).expect("tensor");
        let hf = unpermute(&gguf, 1).expect("unpermute");
        assert_eq!(hf.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values"), vec![0., 1., 2., 3.]);
    }
}
