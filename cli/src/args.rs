//! Command-line arguments.

use std::path::PathBuf;

use altiplano_core::{convert::WeightType, engine::Isq, planner::Preference};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run Llama 3.1 and other local models, offline.
#[derive(Debug, Parser)]
#[command(name = "altiplano", version, about)]
pub struct Cli {
    /// Folder for the conversation database (default: the platform data directory).
    #[arg(long, global = true, env = "ALTIPLANO_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The engine to run models on: llamacpp (the default for GGUF files: fastest on CPUs,
    /// full context) or mistralrs (the default for safetensors folders, which only it runs;
    /// GGUF files too, capped at 8,192 tokens of context). Remembered with `models use`.
    #[arg(long, global = true, env = "ALTIPLANO_ENGINE", value_name = "ENGINE")]
    pub engine: Option<altiplano_core::engine::EngineKind>,

    /// Open no network connection (downloads are off; models on disk keep working). The
    /// same as ALTIPLANO_OFFLINE=1.
    #[arg(long, global = true)]
    pub offline: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message to a local model and stream the reply; the exchange is saved.
    Chat(ChatArgs),
    /// List, show, search, rename or delete saved conversations.
    #[command(subcommand)]
    Conversations(ConversationsCommand),
    /// Recommend the Llama 3.1 variant that fits this machine (or a described one), and why.
    Plan(PlanArgs),
    /// Download, import, list and remove models; manage the Hugging Face token.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Measure a model.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Summarize documents (PDF, DOCX, HTML, Markdown, text) with page citations.
    Summarize(SummarizeArgs),
    /// Ask about a document: follow-up questions answered from its pages.
    #[command(subcommand)]
    Documents(DocumentsCommand),
    /// Print the text of a document (PDF, DOCX, HTML, Markdown, text), page by page.
    Extract {
        /// The file.
        file: PathBuf,
        /// Print JSON: { "file", "pages": [{ "number", "text" }], "warnings" }.
        #[arg(long)]
        json: bool,
    },
    /// Index a code folder and search it.
    #[command(subcommand)]
    Code(CodeCommand),
    /// Serve the chosen model over an OpenAI-compatible HTTP API (/v1/chat/completions,
    /// /v1/models) and Anthropic's Messages API (/v1/messages), for editors, notebooks, agents
    /// and scripts. Ctrl+C stops it.
    Serve(ServeArgs),
    /// Use a model another program serves over an OpenAI-compatible API (vLLM, SGLang,
    /// llama.cpp's server, LM Studio, Ollama, another Altiplano) for chat, summaries and answers.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Show what this machine has: CPU, memory, free disk, GPUs.
    Hardware {
        /// Print the hardware profile as JSON (the format `plan --hardware` reads).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model: a GGUF file, or a safetensors folder (default: the model chosen with
    /// `altiplano models use` or in the app, else the starter model).
    #[arg(long, env = "ALTIPLANO_MODEL", value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// The address to listen on; anything but a loopback address needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The key clients must send (`Authorization: Bearer KEY`).
    #[arg(long, env = "ALTIPLANO_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests that may be running or waiting at once; one more is answered 429 with
    /// Retry-After.
    #[arg(long, default_value_t = altiplano_server::ServeOptions::DEFAULT_QUEUE, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub queue: u16,
    /// Let web pages from ORIGIN (`https://app.example`: scheme, host, port) call the server
    /// (repeat for more).
    #[arg(long, value_name = "ORIGIN")]
    pub cors: Vec<String>,
    /// Keep every request and its reply as a conversation (searchable, in the app's history).
    #[arg(long)]
    pub keep_conversations: bool,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Perplexity of a text file under a model (lower is better): how much quantization costs.
    Perplexity {
        /// The text file (UTF-8).
        file: PathBuf,
        /// The model: a GGUF file or a safetensors folder.
        #[arg(long, env = "ALTIPLANO_MODEL", value_name = "PATH")]
        model: PathBuf,
        /// Quantize a safetensors model in place as it loads.
        #[arg(long, value_enum, value_name = "TYPE")]
        isq: Option<IsqArg>,
        /// Tokens per forward pass.
        #[arg(long, default_value_t = 512)]
        window: usize,
        /// Print JSON: { "perplexity", "tokens" }.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DocumentsCommand {
    /// Answer a question about a document from its most relevant pages (and its summary, once
    /// `summarize` has written one), citing pages as [p. N]; citations of pages the model was
    /// not shown are removed. The exchange is saved in the document's conversation, as in the app.
    Ask {
        /// The document (PDF, DOCX, HTML, Markdown, text).
        file: PathBuf,
        /// The question.
        question: String,
        /// The model: a GGUF file, or a safetensors folder (default: the model chosen with
        /// `altiplano models use` or in the app, else the starter model).
        #[arg(long, env = "ALTIPLANO_MODEL", value_name = "PATH")]
        model: Option<PathBuf>,
        /// Context to use, in tokens (default: all the model can use well).
        #[arg(long, value_name = "TOKENS")]
        context: Option<usize>,
        /// Print JSON: { "answer", "citations", "removed_citations", "sentences" (each with
        /// its checked "pages" and "sourced"), "coverage", "pages_shown", "retrieval",
        /// "conversation_id", "stopped", "stats" }.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// The files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The model: a GGUF file, or a safetensors folder (default: the chat model chosen with
    /// `altiplano models use` or `remote use`, else the starter model).
    #[arg(long, env = "ALTIPLANO_MODEL", value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Print one JSON object per file: { "file", "page_count", "summary", "citations", "warnings" }.
    #[arg(long)]
    pub json: bool,
    /// Summarize again even if a finished summary is saved.
    #[arg(long)]
    pub fresh: bool,
    /// Context to use, in tokens (default: all the model can use well).
    #[arg(long, value_name = "TOKENS")]
    pub context: Option<usize>,
    /// Largest chunk of text per first-level summary, in tokens (default: as large as fits).
    #[arg(long, value_name = "TOKENS")]
    pub chunk_tokens: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The model: a GGUF file, or a safetensors folder (default: the model chosen with
    /// `altiplano models use` or in the app, else the starter model).
    #[arg(long, env = "ALTIPLANO_MODEL", value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Quantize a safetensors model in place as it loads (default for the chosen model: the
    /// quantization it was chosen with).
    #[arg(long, value_enum, value_name = "TYPE")]
    pub isq: Option<IsqArg>,
    /// Continue this conversation (default: start a new one).
    #[arg(long, value_name = "ID")]
    pub conversation: Option<i64>,
    /// Always pick the most likely token, so the same prompt gives the same reply.
    #[arg(long)]
    pub greedy: bool,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.6, conflicts_with = "greedy")]
    pub temperature: f64,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 0.9, conflicts_with = "greedy")]
    pub top_p: f64,
    /// Longest reply, in tokens.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    /// Seed of the sampler's random choices (the same seed and prompt give the same reply on
    /// llama.cpp).
    #[arg(long, conflicts_with = "greedy")]
    pub seed: Option<u32>,
    /// Instructions for the model, sent before the history.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Print one JSON object with the reply and its measurements instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// The message.
    pub prompt: String,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan for the machine in this hardware profile (JSON, as `hardware --json` prints)
    /// instead of this one.
    #[arg(long, value_name = "FILE")]
    pub hardware: Option<PathBuf>,
    /// Context length to plan for, in tokens [default: as much as the recommended variant
    /// holds, up to 32768].
    #[arg(long)]
    pub context: Option<u32>,
    /// Among variants of the largest model that fits: highest quality or fastest.
    #[arg(long, value_enum, default_value_t = PreferArg::Quality)]
    pub prefer: PreferArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConversationsCommand {
    /// All conversations, most recent first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The messages of one conversation.
    Show {
        /// Conversation id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find messages containing all the words of TEXT.
    Search {
        /// Words to look for.
        text: String,
        /// Most results to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a conversation a new title.
    Rename {
        /// Conversation id.
        id: i64,
        /// The new title.
        title: String,
    },
    /// Delete a conversation and its messages.
    Delete {
        /// Conversation id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add (or replace) a server: connects once to check it and says what it found.
    Add {
        /// A name for it (letters, digits, '-', '_', '.').
        name: String,
        /// Its OpenAI-compatible base URL, e.g. `http://gpu-box:8000/v1`.
        url: String,
        /// The key it wants (kept in the system keyring).
        #[arg(long, value_name = "KEY")]
        api_key: Option<String>,
        /// The model to use there (default: the first it serves).
        #[arg(long, value_name = "ID")]
        model: Option<String>,
        /// Its context length in tokens, for servers that do not say.
        #[arg(long, value_name = "N")]
        context: Option<usize>,
        /// Use it as the chat model now (as `remote use`).
        #[arg(long = "use")]
        use_now: bool,
    },
    /// The servers added, and which one is the chat model.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a server and its key.
    Rm {
        /// Its name.
        name: String,
    },
    /// Make a server's model the chat model (until `models use` chooses a local one).
    Use {
        /// Its name.
        name: String,
        /// The model to use there.
        #[arg(long, value_name = "ID")]
        model: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Models on disk, and downloads not finished yet.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download a catalog variant (e.g. llama-3.1-8b-instruct:q4_k_m) or a Hugging Face repo
    /// (org/name). Interrupted downloads continue where they stopped.
    Pull(PullArgs),
    /// Remove a model: downloaded files are deleted, imported ones only forgotten.
    Rm {
        /// Model id (from `models list`).
        id: i64,
    },
    /// Make a model the chat model (of `altiplano chat` and the app): a catalog variant
    /// (downloaded first when it is not on disk), a model id of `models list`, or a GGUF file or
    /// safetensors folder. It is loaded as its plan says, and what it really takes here (memory,
    /// decode speed) is recorded beside the planner's estimate.
    Use {
        /// Variant id (e.g. llama-3.1-8b-instruct:q4_k_m), model id, or path.
        target: String,
        /// Quantize a safetensors model in place as it loads (default: the variant's own, if any).
        #[arg(long, value_enum, value_name = "TYPE")]
        isq: Option<IsqArg>,
        /// Print JSON: { "model", "measurement" }.
        #[arg(long)]
        json: bool,
    },
    /// The embedding models search can use (the catalog's), whether each is on disk, and
    /// which search uses for documents and for code.
    Search {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make an embedding model (one of `models search`, on disk: `models pull ID` fetches it)
    /// the one search uses for documents, for code, or both.
    UseSearch {
        /// Embedding model id (e.g. multilingual-e5-small).
        id: String,
        /// What for: documents, code or both.
        #[arg(long = "for", value_enum, default_value = "both")]
        purpose: SearchPurposeArg,
    },
    /// Register a GGUF file or a safetensors folder already on disk, after checking it.
    Import {
        /// The file or folder.
        path: PathBuf,
    },
    /// The Hugging Face access token, kept in the OS keyring.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write a Llama GGUF file as a Hugging Face safetensors folder (weights dequantized,
    /// config.json, tokenizer.json and tokenizer_config.json from its metadata).
    ConvertGguf {
        /// The GGUF file.
        input: PathBuf,
        /// The folder to create (must be new or empty).
        output: PathBuf,
        /// Type of the written weights.
        #[arg(long, value_enum, default_value = "bf16")]
        dtype: WeightTypeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What a search model is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchPurposeArg {
    /// Document pages and follow-up questions.
    Documents,
    /// Code chunks and code questions.
    Code,
    /// Both.
    Both,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// A catalog variant id (see `altiplano plan`), an embedding model id (see
    /// `altiplano models search`) or a repo id (org/name).
    pub target: String,
    /// A file of the repo to fetch (repeatable); default: the repo's model files.
    #[arg(long = "file", value_name = "NAME")]
    pub files: Vec<String>,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Print the result as JSON instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Store a token (read from the terminal without echo, or from standard input).
    Set,
    /// Remove the stored token.
    Clear,
    /// Say whether a token is set, and where it comes from (never the token itself).
    Status,
}

#[derive(Debug, Subcommand)]
pub enum CodeCommand {
    /// Index a folder (again: only what changed is read).
    Index {
        /// The folder.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find the code that answers a question; prints path:start-end ranges.
    Search {
        /// The folder (indexed first if needed).
        dir: PathBuf,
        /// The question or search words.
        query: String,
        /// Most results.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Answer a question about the folder with a local model; the answer cites path:start-end.
    Ask {
        /// The folder (indexed first if needed).
        dir: PathBuf,
        /// The question.
        question: String,
        /// The model: a GGUF file, or a safetensors folder (default: the chat model chosen
        /// with `altiplano models use` or `remote use`, else the starter model).
        #[arg(long, env = "ALTIPLANO_MODEL", value_name = "PATH")]
        model: Option<PathBuf>,
        /// Always pick the most likely token.
        #[arg(long)]
        greedy: bool,
        /// Print one JSON object (answer, citations, excerpts) instead of streaming text.
        #[arg(long)]
        json: bool,
    },
}

/// `--isq`: the core's [`Isq`], as the command line names it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum IsqArg {
    /// 4-bit k-quant.
    Q4k,
    /// 5-bit k-quant.
    Q5k,
    /// 6-bit k-quant.
    Q6k,
    /// 8-bit.
    #[value(name = "q8_0")]
    Q8_0,
    /// FP8 (E4M3): fast on NVIDIA Hopper and Ada; elsewhere it halves memory but dequantizes.
    Fp8,
}

impl From<IsqArg> for Isq {
    fn from(arg: IsqArg) -> Self {
        match arg {
            IsqArg::Q4k => Self::Q4k,
            IsqArg::Q5k => Self::Q5k,
            IsqArg::Q6k => Self::Q6k,
            IsqArg::Q8_0 => Self::Q8_0,
            IsqArg::Fp8 => Self::Fp8,
        }
    }
}

/// `--prefer`: the core's [`Preference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreferArg {
    /// Highest precision that fits.
    Quality,
    /// Fastest decode.
    Speed,
}

impl From<PreferArg> for Preference {
    fn from(arg: PreferArg) -> Self {
        match arg {
            PreferArg::Quality => Self::Quality,
            PreferArg::Speed => Self::Speed,
        }
    }
}

/// `--dtype`: the core's [`WeightType`].
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WeightTypeArg {
    /// bfloat16: half the size, what Meta publishes.
    Bf16,
    /// float32: exact for every GGUF quantization.
    F32,
}

impl From<WeightTypeArg> for WeightType {
    fn from(arg: WeightTypeArg) -> Self {
        match arg {
            WeightTypeArg::Bf16 => Self::Bf16,
            WeightTypeArg::F32 => Self::F32,
        }
    }
}
