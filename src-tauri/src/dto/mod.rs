//! Data transfer types: what crosses the IPC boundary, in the UI's spelling (camelCase).
//!
//! Domain types in `altiplano-core` stay free of transport concerns; these mirror them and
//! generate TypeScript declarations in `ui/src/lib/api/bindings/` (`cargo test -p
//! altiplano-app` writes them; CI fails when the committed files drift).
//!
//! One module per feature, as `commands/` is.

mod chat;
mod code;
mod conversations;
mod documents;
mod downloads;
mod error;
mod model;
mod plan;
mod search;

pub use chat::*;
pub use code::*;
pub use conversations::*;
pub use documents::*;
pub use downloads::*;
pub use error::*;
pub use model::*;
pub use plan::*;
pub use search::*;
