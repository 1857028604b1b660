//! The real editing traces in `../shared/data/editing-traces` (benchmark data).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One edit: at character `pos`, delete `delete` characters, then insert `insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Character position.
    pub pos: usize,
    /// Characters deleted.
    pub delete: usize,
    /// Text inserted.
    pub insert: String,
}

/// A sequential editing trace.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Text before the first patch.
    pub start: String,
    /// Text after the last patch.
    pub end: String,
    /// Every patch, in order (one keystroke each in the paper trace).
    pub patches: Vec<Patch>,
}

/// Where the shared benchmark data lives: `$ALONGSIDE_DATA`, else `../shared/data` next to
/// the workspace, else `/work/shared/data`.
pub fn data_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("ALONGSIDE_DATA") {
        return Some(PathBuf::from(d));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    [workspace.join("../shared/data"), PathBuf::from("/work/shared/data")]
        .into_iter()
        .find(|p| p.is_dir())
}

/// Loads a gzipped trace such as `editing-traces/automerge-paper.json.gz`.
pub fn load(path: &Path) -> Result<Trace> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut json = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut json)?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    let text = |k: &str| v[k].as_str().map(str::to_owned).context("trace text");
    let mut patches = Vec::new();
    for txn in v["txns"].as_array().context("txns")? {
        for p in txn["patches"].as_array().context("patches")? {
            patches.push(Patch {
                pos: p[0].as_u64().context("pos")? as usize,
                delete: p[1].as_u64().context("delete")? as usize,
                insert: p[2].as_str().context("insert")?.to_owned(),
            });
        }
    }
    Ok(Trace {
        start: text("startContent")?,
        end: text("endContent")?,
        patches,
    })
}
