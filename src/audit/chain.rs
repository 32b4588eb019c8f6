//! The hash chain: each audit line carries its sequence number, the hash
//! of the line before it and its own hash, SHA-256 over the line's content
//! (its JSON without `hash`, keys sorted) — so an edited line fails at
//! that line, a deleted one at the line after it, and a truncated tail
//! against the last published head.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `prev` of the first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a chain stands: the last line's number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

fn hash_of(content: &Map<String, Value>) -> String {
    // serde_json's map keeps keys sorted: the text is canonical.
    let text = serde_json::to_string(content).expect("JSON values always serialise");
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The line after `head` recording `entry`, and the new head.
pub fn next_line(head: &Head, entry: Value) -> (String, Head) {
    let seq = head.seq + 1;
    let mut content = Map::new();
    content.insert("seq".into(), seq.into());
    content.insert("prev".into(), head.hash.clone().into());
    content.insert("entry".into(), entry);
    let hash = hash_of(&content);
    content.insert("hash".into(), hash.clone().into());
    let line = serde_json::to_string(&content).expect("JSON values always serialise");
    (line, Head { seq, hash })
}

/// Checks one line against the head before it: its number follows, its
/// `prev` is that head's hash, its hash is its content's. Returns the new
/// head, or why the line fails.
pub fn check_line(line: &str, before: Option<&Head>) -> Result<Head, String> {
    let mut content: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let hash = match content.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err("no `hash`".into()),
    };
    let seq = content
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("no `seq`")?;
    let prev = content
        .get("prev")
        .and_then(Value::as_str)
        .ok_or("no `prev`")?;
    if !content.contains_key("entry") || content.len() != 3 {
        return Err("fields other than seq, prev, entry and hash".into());
    }
    if let Some(before) = before {
        if seq != before.seq + 1 {
            return Err(format!(
                "line number {seq} follows {} (a line is missing or repeated)",
                before.seq
            ));
        }
        if prev != before.hash {
            return Err(format!(
                "`prev` {prev} is not the hash of the line before ({}): a line before it was changed or removed",
                before.hash
            ));
        }
    }
    let actual = hash_of(&content);
    if actual != hash {
        return Err(format!(
            "the line's content hashes to {actual}, not its `hash` {hash}: it was changed"
        ));
    }
    Ok(Head { seq, hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<String> {
        let mut head = Head::genesis();
        (0..n)
            .map(|i| {
                let (line, h) = next_line(&head, json!({"rule": format!("r{i}"), "masked": i}));
                head = h;
                line
            })
            .collect()
    }

    fn verify(lines: &[String]) -> Result<Head, (usize, String)> {
        let mut head: Option<Head> = Some(Head::genesis());
        for (i, l) in lines.iter().enumerate() {
            head = Some(check_line(l, head.as_ref()).map_err(|e| (i + 1, e))?);
        }
        Ok(head.unwrap())
    }

    #[test]
    fn a_chain_verifies_and_each_kind_of_tampering_fails_where_it_happened() {
        let lines = chain(5);
        let head = verify(&lines).unwrap();
        assert_eq!(head.seq, 5);
        // An edited entry: that line.
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"r2\"", "\"rX\"");
        let (at, why) = verify(&edited).unwrap_err();
        assert_eq!(at, 3, "{why}");
        assert!(why.contains("changed"), "{why}");
        // A deleted line: the line after it.
        let mut deleted = lines.clone();
        deleted.remove(1);
        let (at, why) = verify(&deleted).unwrap_err();
        assert_eq!(at, 2, "{why}");
        // A line re-hashed after editing: the next line's `prev` fails.
        let mut rehashed = lines.clone();
        let mut v: Map<String, Value> = serde_json::from_str(&rehashed[1]).unwrap();
        v.remove("hash");
        v.insert("entry".into(), json!({"rule": "forged"}));
        let h = hash_of(&v);
        v.insert("hash".into(), h.into());
        rehashed[1] = serde_json::to_string(&v).unwrap();
        let (at, _) = verify(&rehashed).unwrap_err();
        assert_eq!(at, 3);
        // Garbage.
        assert!(check_line("{", None).is_err());
        assert!(check_line("{\"seq\":1}", None).is_err());
    }
}
