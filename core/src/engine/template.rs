//! A model's chat template, rendered the way Hugging Face's tokenizers render it.
//!
//! GGUF files carry the model's Jinja template (`tokenizer.chat_template`). mistral.rs renders
//! it itself; for llama.cpp this module does, with minijinja (the version and options mistral.rs
//! uses: Python string methods, `lstrip_blocks`, `trim_blocks`, `raise_exception`,
//! `strftime_now`), so a prompt is the same text whichever engine runs it. llama.cpp's own
//! `llama_chat_apply_template` only recognises templates by their markers and would drop, say,
//! SmolLM2's default system prompt.

use minijinja::{context, Environment, Error, ErrorKind};

use super::PromptMessage;
use super::Role;

/// A chat template with the special tokens it refers to.
#[derive(Debug, Clone)]
pub(crate) struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// A template; `bos_token` and `eos_token` are the texts of those tokens.
    pub(crate) fn new(source: String, bos_token: String, eos_token: String) -> Result<Self, String> {
        let template = Self { source, bos_token, eos_token };
        // Parse once now, so a broken template is a load error, not a failure at the first reply.
        template.environment().map_err(|e| format!("its chat template cannot be read: {e}"))?;
        Ok(template)
    }

    fn environment(&self) -> Result<Environment<'_>, Error> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_lstrip_blocks(true);
        env.set_trim_blocks(true);
        env.add_function("raise_exception", |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_function("strftime_now", |format: String| chrono::Utc::now().format(&format).to_string());
        env.add_template("chat", &self.source)?;
        Ok(env)
    }

    /// The prompt for `messages`, ending with the header that opens the assistant's reply.
    pub(crate) fn render(&self, messages: &[PromptMessage]) -> Result<String, String> {
        let env = self.environment().map_err(|e| e.to_string())?;
        let template = env.get_template("chat").map_err(|e| e.to_string())?;
        let messages: Vec<_> =
            messages.iter().map(|m| context! { role => role_name(m.role), content => m.content.as_str() }).collect();
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
                // Meta's templates print this as "Today Date"; their own default is in this format.
                date_string => chrono::Utc::now().format("%d %b %Y").to_string(),
            })
            .map_err(|e| format!("the model's chat template failed: {e}"))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, messages: &[PromptMessage], expected: &str) {
        let template = ChatTemplate::new(source.to_owned(), "<s>".into(), "</s>".into()).expect("template parses");
        assert_eq!(template.render(messages).expect("renders"), expected);
    }

    #[test]
    fn renders_python_string_methods_and_the_generation_prompt() {
        check(
            "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'].strip() }}\n{% endfor %}\
             {% if add_generation_prompt %}[assistant]{% endif %}",
            &[PromptMessage::new(Role::System, "  Be brief. "), PromptMessage::new(Role::User, "Hi")],
            "<s>[system]Be brief.\n[user]Hi\n[assistant]",
        );
    }

    #[test]
    fn a_broken_template_is_refused_and_raise_exception_is_an_error() {
        assert!(ChatTemplate::new("{% for %}".into(), String::new(), String::new()).is_err());
        let raising = ChatTemplate::new("{{ raise_exception('no system role') }}".into(), String::new(), String::new())
            .expect("parses");
        let err = raising.render(&[PromptMessage::new(Role::User, "x")]).unwrap_err();
        assert!(err.contains("no system role"), "{err}");
    }
}
