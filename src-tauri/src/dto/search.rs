//! Search's embedding models: the catalog's, on disk or not, and what search uses for what.

use altiplano_core::catalog::Purpose;
use altiplano_core::search_models::SearchModelStatus;
use serde::{Deserialize, Serialize};

/// What a search model serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum PurposeDto {
    /// Document pages and follow-up questions.
    Documents,
    /// Code chunks and code questions.
    Code,
}

impl From<Purpose> for PurposeDto {
    fn from(p: Purpose) -> Self {
        match p {
            Purpose::Documents => Self::Documents,
            Purpose::Code => Self::Code,
        }
    }
}

impl From<PurposeDto> for Purpose {
    fn from(p: PurposeDto) -> Self {
        match p {
            PurposeDto::Documents => Self::Documents,
            PurposeDto::Code => Self::Code,
        }
    }
}

/// One catalog embedding model.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct SearchModelDto {
    /// Catalog id: what Download and Use send.
    pub id: String,
    pub name: String,
    /// Of Llama 3.1's eight languages, the ones it was trained on (ISO 639-1).
    pub languages: Vec<String>,
    /// What it is good for, best first.
    pub good_for: Vec<PurposeDto>,
    pub dims: u32,
    pub parameters: u64,
    /// About what a download takes.
    pub download_bytes: u64,
    pub starter: bool,
    /// On disk (shipped or downloaded).
    pub on_disk: bool,
    /// What search uses it for now.
    pub used_for: Vec<PurposeDto>,
    /// What the user chose it for (the starter stands in while it is not on disk).
    pub chosen_for: Vec<PurposeDto>,
    pub licence_url: String,
}

impl From<SearchModelStatus> for SearchModelDto {
    fn from(s: SearchModelStatus) -> Self {
        let m = s.model;
        Self {
            download_bytes: m.download_bytes(),
            id: m.id,
            name: m.name,
            languages: m.languages,
            good_for: m.good_for.into_iter().map(Into::into).collect(),
            dims: m.dims,
            parameters: m.parameters,
            starter: m.starter,
            on_disk: s.path.is_some(),
            used_for: s.used_for.into_iter().map(Into::into).collect(),
            chosen_for: s.chosen_for.into_iter().map(Into::into).collect(),
            licence_url: m.licence_url,
        }
    }
}
