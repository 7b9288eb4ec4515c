//! Golden translation tests: each case under `tests/golden/<provider>/` is a JSON file with
//! the client's request, the upstream request Bursar must send, the upstream's answer (a
//! JSON body, an event stream, or an error) and the answer the client must get. Run with
//! `BURSAR_BLESS=1` to write the computed outputs into the files (then read the diff).

use serde_json::Value;
use std::path::PathBuf;

pub struct Case {
    pub name: String,
    path: PathBuf,
    pub data: Value,
}

/// Every case of a provider, sorted by file name.
pub fn cases(provider: &str) -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(provider);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no golden cases in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let data =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Case {
                name: path.file_stem().unwrap().to_string_lossy().to_string(),
                path,
                data,
            }
        })
        .collect()
}

impl Case {
    pub fn get(&self, key: &str) -> &Value {
        &self.data[key]
    }

    /// Compares `actual` with the case's `key`; collects a readable mismatch.
    pub fn expect(&mut self, key: &str, actual: Value, failures: &mut Vec<String>) {
        if std::env::var_os("BURSAR_BLESS").is_some() {
            self.data[key] = actual;
            return;
        }
        if self.data[key] != actual {
            failures.push(format!(
                "{}: {key} differs\n--- expected\n{}\n--- actual\n{}",
                self.name,
                serde_json::to_string_pretty(&self.data[key]).unwrap(),
                serde_json::to_string_pretty(&actual).unwrap()
            ));
        }
    }

    /// Writes blessed outputs back.
    pub fn save(&self) {
        if std::env::var_os("BURSAR_BLESS").is_some() {
            let text = serde_json::to_string_pretty(&self.data).unwrap() + "\n";
            std::fs::write(&self.path, text).unwrap();
        }
    }
}

/// The JSON payloads of an OpenAI event stream, `"[DONE]"` as a string.
pub fn sse_payloads(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| {
            if data == "[DONE]" {
                Value::String(data.into())
            } else {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("{data}: {e}"))
            }
        })
        .collect()
}
