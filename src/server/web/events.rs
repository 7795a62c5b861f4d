//! graphite-web's events (Grafana's annotations): `POST /events/` stores
//! `{"what", "tags", "when", "data"}`, `GET /events/get_data` lists them by
//! time and tags. Kept in an SQLite database under `state_dir`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};
use serde_json::{json, Value};

/// Events one `get_data` answer lists at most (the oldest first).
pub const MAX_LISTED: usize = 100_000;

pub struct Events {
    db: Mutex<Connection>,
}

/// Tags as django-tagging reads a tag string: split on commas when there
/// are any, else on spaces; each once, sorted.
pub fn parse_tags(input: &str) -> Vec<String> {
    let parts: Vec<&str> = if input.contains(',') {
        input.split(',').collect()
    } else {
        input.split_whitespace().collect()
    };
    let mut tags: Vec<String> = parts
        .into_iter()
        .map(|t| t.trim().trim_matches('"').to_string())
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

impl Events {
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let db = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 at REAL NOT NULL,
                 what TEXT NOT NULL,
                 data TEXT NOT NULL,
                 tags TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_at ON events (at);",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Events { db: Mutex::new(db) })
    }

    /// Stores one posted event; the error is the client's (400).
    pub fn add(&self, body: &[u8], now: f64) -> Result<(), String> {
        let event: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let Some(event) = event.as_object() else {
            return Err("the body must be a JSON object".into());
        };
        // Kept as written (graphite-web lists them so); matched as
        // django-tagging parses them.
        let tags = match event.get("tags") {
            None | Some(Value::Null) => String::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" "),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("\"tags\" must be an array or space-separated string".into()),
        };
        let what = match event.get("what") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => return Err("\"what\" is required".into()),
            Some(other) => other.to_string(),
        };
        let when = match event.get("when") {
            None | Some(Value::Null) => now,
            Some(v) => v
                .as_f64()
                .filter(|t| t.is_finite() && t.abs() < 1e12)
                .ok_or("\"when\" must be Unix seconds")?,
        };
        let data = match event.get("data") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let db = self
            .db
            .lock()
            .map_err(|_| "the events database is unusable".to_string())?;
        db.execute(
            "INSERT INTO events (at, what, data, tags) VALUES (?1, ?2, ?3, ?4)",
            params![when, what, data, tags],
        )
        .map_err(|e| format!("storing the event: {e}"))?;
        Ok(())
    }

    /// Events between two times (inclusive), oldest first; with `tags`,
    /// those holding all of them (`set` `union`: any of them).
    pub fn find(
        &self,
        from: f64,
        until: f64,
        tags: Option<&[String]>,
        set: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        let db = self
            .db
            .lock()
            .map_err(|_| "the events database is unusable".to_string())?;
        let mut stmt = db
            .prepare("SELECT id, at, what, data, tags FROM events WHERE at >= ?1 AND at <= ?2 ORDER BY at, id")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![from, until], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, f64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, at, what, data, tag_text) = row.map_err(|e| e.to_string())?;
            let have: Vec<&str> = tag_text.split_whitespace().collect();
            if let Some(want) = tags {
                let parsed = parse_tags(&tag_text);
                let keep = if set == Some("union") {
                    want.iter().any(|t| parsed.contains(t))
                } else {
                    want.iter().all(|t| parsed.contains(t))
                };
                if !keep {
                    continue;
                }
            }
            out.push(json!({"when": at, "what": what, "data": data, "tags": have, "id": id}));
            if out.len() >= MAX_LISTED {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_and_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = Events::open(&dir.path().join("events.db")).expect("open");
        ev.add(
            br#"{"what": "deploy", "tags": ["web", "app1", "web"], "when": 100, "data": "v2"}"#,
            0.0,
        )
        .expect("add");
        ev.add(
            br#"{"what": "restart", "tags": "db web", "when": 200}"#,
            0.0,
        )
        .expect("add");
        ev.add(br#"{"what": "later"}"#, 300.0).expect("add");
        assert!(ev.add(br#"{"tags": 5, "what": "x"}"#, 0.0).is_err());
        assert!(ev.add(b"[1]", 0.0).is_err());
        assert_eq!(ev.find(0.0, 1e9, None, None).expect("find").len(), 3);
        let web = ev
            .find(0.0, 1e9, Some(&["web".into()]), None)
            .expect("find");
        assert_eq!(web.len(), 2);
        assert_eq!(web[0]["tags"], json!(["web", "app1", "web"]));
        let any = ev
            .find(0.0, 1e9, Some(&["db".into(), "app1".into()]), Some("union"))
            .expect("find");
        assert_eq!(any.len(), 2);
        let all = ev
            .find(
                0.0,
                1e9,
                Some(&["db".into(), "app1".into()]),
                Some("intersection"),
            )
            .expect("find");
        assert!(all.is_empty());
        assert_eq!(
            ev.find(150.0, 250.0, None, None).expect("find")[0]["what"],
            "restart"
        );
    }
}
