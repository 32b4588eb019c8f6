//! `when:` conditions: a CEL expression over who is asking and what is
//! asked, compiled at load (cel-rust), evaluated per request. A guard
//! whose condition does not hold does not run for that request.
//!
//! Variables: `identity` (`user`: string or null, `groups`: list of
//! strings, `claims`: the verified claims), `request` (`path`, `model`,
//! `headers`: lower-case names), `backend` (`name`). A syntax error, or a
//! variable other than these, is a load error with its place. An
//! evaluation error (a claim the token does not carry, a type mismatch)
//! counts as holding: the guard runs — the stricter side — and it is
//! logged; write `has(identity.claims.dept) && …` to mean "absent is no".

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::objects::Key;
use cel::{Context, Env, ExecutionError, Program, Value};

/// CEL's standard library (its functions and their overloads), built once
/// for the process. `Context::default()` builds it anew for every context:
/// measured under 16 clients through Envoy with three budget limits,
/// that was ~19 % of promptgate's CPU (`scripts/bench-budgets.sh`).
static STDLIB: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled `when:`.
pub struct Condition {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// The variables of one request, bound once into a CEL context that every
/// condition of the request is evaluated in.
pub struct Vars {
    ctx: Context<'static, 'static>,
}

/// What a request offers its conditions.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Facts<'a> {
    pub user: Option<&'a str>,
    pub groups: &'a [String],
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub path: &'a str,
    pub model: Option<&'a str>,
    pub headers: &'a [(String, String)],
    pub backend: &'a str,
}

impl Vars {
    pub fn new(f: &Facts<'_>) -> Vars {
        // Built as CEL values directly: through `serde_json::Value` and
        // `cel::to_value` every header was converted twice (~4 % of
        // promptgate's CPU with three budget limits under load, `perf`).
        let s = |v: &str| Value::String(Arc::new(v.to_owned()));
        let map = |entries: Vec<(&str, Value)>| -> Value {
            let m: HashMap<Key, Value> = entries
                .into_iter()
                .map(|(k, v)| (Key::String(Arc::new(k.to_owned())), v))
                .collect();
            Value::Map(m.into())
        };
        let headers: HashMap<Key, Value> = f
            .headers
            .iter()
            .map(|(k, v)| (Key::String(Arc::new(k.to_ascii_lowercase())), s(v)))
            .collect();
        let claims = match f.claims {
            Some(c) if !c.is_empty() => cel::to_value(c).unwrap_or(Value::Null),
            _ => map(Vec::new()),
        };
        let mut ctx = Context::with_env(STDLIB.clone());
        ctx.add_variable_from_value(
            "identity",
            map(vec![
                ("user", f.user.map_or(Value::Null, s)),
                (
                    "groups",
                    Value::List(Arc::new(f.groups.iter().map(|g| s(g)).collect())),
                ),
                ("claims", claims),
            ]),
        );
        ctx.add_variable_from_value(
            "request",
            map(vec![
                ("path", s(f.path)),
                ("model", s(f.model.unwrap_or(""))),
                ("headers", Value::Map(headers.into())),
            ]),
        );
        ctx.add_variable_from_value("backend", map(vec![("name", s(f.backend))]));
        Vars { ctx }
    }
}

const VARIABLES: [&str; 3] = ["identity", "request", "backend"];

impl Condition {
    /// Compiles `source`; the error says what is wrong (the caller adds
    /// the place).
    pub fn compile(source: &str) -> Result<Arc<Condition>, String> {
        let program =
            Program::compile(source).map_err(|e| format!("`{source}` is not valid CEL: {e}"))?;
        let cond = Condition {
            source: source.to_owned(),
            program,
        };
        // A variable other than ours is an error now, not a surprise on a
        // request: evaluate against an empty request.
        let empty = Vars::new(&Facts::default());
        if let Err(ExecutionError::UndeclaredReference(name)) = cond.eval(&empty) {
            if !VARIABLES.contains(&name.as_str()) {
                return Err(format!(
                    "`{source}`: unknown variable `{name}` (conditions read identity, request and backend)"
                ));
            }
        }
        Ok(Arc::new(cond))
    }

    fn eval(&self, vars: &Vars) -> Result<Value, ExecutionError> {
        self.program.execute(&vars.ctx)
    }

    /// Whether the condition holds for this request (an error holds).
    pub fn holds(&self, vars: &Vars) -> bool {
        match self.eval(vars) {
            Ok(Value::Bool(b)) => b,
            Ok(other) => {
                tracing::warn!(condition = %self.source, value = ?other, "a `when:` condition gave no boolean; the guard runs");
                true
            }
            Err(e) => {
                tracing::debug!(condition = %self.source, error = %e, "a `when:` condition failed; the guard runs");
                true
            }
        }
    }

    /// The expression's value as a string (a budget's bucket): a string as
    /// it is, a number or boolean printed; `None` for anything else (null,
    /// a list, an evaluation error).
    pub fn string(&self, vars: &Vars) -> Option<String> {
        match self.eval(vars) {
            Ok(Value::String(s)) => Some(s.to_string()),
            Ok(Value::Int(i)) => Some(i.to_string()),
            Ok(Value::UInt(u)) => Some(u.to_string()),
            Ok(Value::Bool(b)) => Some(b.to_string()),
            Ok(other) => {
                tracing::debug!(expression = %self.source, value = ?other, "a budget key gave no string");
                None
            }
            Err(e) => {
                tracing::debug!(expression = %self.source, error = %e, "a budget key failed");
                None
            }
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        groups: &'a [String],
        claims: &'a serde_json::Map<String, serde_json::Value>,
    ) -> Facts<'a> {
        Facts {
            user: Some("carol"),
            groups,
            claims: Some(claims),
            path: "/v1/messages",
            model: Some("claude-sonnet-4-5"),
            headers: &[],
            backend: "anthropic",
        }
    }

    #[test]
    fn conditions_read_identity_request_and_backend() {
        let contractors = vec!["contractors".to_owned()];
        let staff = vec!["staff".to_owned()];
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({"dept": "eng", "level": 3})).unwrap();
        let c = Condition::compile(r#""contractors" in identity.groups"#).unwrap();
        assert!(c.holds(&Vars::new(&facts(&contractors, &claims))));
        assert!(!c.holds(&Vars::new(&facts(&staff, &claims))));
        assert!(
            !c.holds(&Vars::new(&Facts::default())),
            "no identity: not a contractor"
        );
        for (src, want) in [
            (
                r#"identity.user == "carol" && backend.name == "anthropic""#,
                true,
            ),
            (r#"request.model.startsWith("claude-opus")"#, false),
            (r#"identity.claims.level >= 3"#, true),
            (
                r#"has(identity.claims.region) && identity.claims.region == "eu""#,
                false,
            ),
            (r#"request.path == "/v1/messages""#, true),
        ] {
            let c = Condition::compile(src).unwrap();
            assert_eq!(c.holds(&Vars::new(&facts(&staff, &claims))), want, "{src}");
        }
        // A missing claim is an error: the guard runs.
        let c = Condition::compile(r#"identity.claims.region == "eu""#).unwrap();
        assert!(c.holds(&Vars::new(&facts(&staff, &claims))));
        // Headers by lower-case name; no identity: user null, no groups or claims.
        let headers = [("X-User".to_owned(), "dave".to_owned())];
        let anonymous = Vars::new(&Facts {
            headers: &headers,
            ..Facts::default()
        });
        let key = Condition::compile(r#"request.headers["x-user"]"#).unwrap();
        assert_eq!(key.string(&anonymous).as_deref(), Some("dave"));
        for src in [
            "identity.user == null",
            "size(identity.groups) == 0",
            "size(identity.claims) == 0",
            r#"request.model == "" && !has(request.headers.authorization)"#,
        ] {
            let c = Condition::compile(src).unwrap();
            assert!(matches!(c.eval(&anonymous), Ok(Value::Bool(true))), "{src}");
        }
    }

    #[test]
    fn bad_conditions_fail_at_load() {
        let e = Condition::compile(r#""contractors" in identity.groups &&"#).unwrap_err();
        assert!(e.contains("not valid CEL"), "{e}");
        let e = Condition::compile(r#""x" in idenity.groups"#).unwrap_err();
        assert!(e.contains("unknown variable `idenity`"), "{e}");
        // Comprehension variables are fine.
        Condition::compile(r#"identity.groups.exists(g, g.startsWith("team-"))"#).unwrap();
    }

    #[test]
    fn expressions_give_strings_for_budget_keys() {
        let staff = vec!["staff".to_owned()];
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({"dept": "eng", "level": 3})).unwrap();
        let vars = Vars::new(&facts(&staff, &claims));
        let key = |src: &str| Condition::compile(src).unwrap().string(&vars);
        assert_eq!(key("identity.user").as_deref(), Some("carol"));
        assert_eq!(
            key(r#"identity.user + "/" + request.model"#).as_deref(),
            Some("carol/claude-sonnet-4-5")
        );
        assert_eq!(key("identity.claims.level").as_deref(), Some("3"));
        assert_eq!(
            key(r#""x-user" in request.headers ? request.headers["x-user"] : "everyone""#)
                .as_deref(),
            Some("everyone")
        );
        assert_eq!(key("identity.groups"), None, "a list is no bucket");
        assert_eq!(key("identity.claims.region"), None, "a missing claim");
        let none = Vars::new(&Facts::default());
        assert_eq!(
            Condition::compile("identity.user").unwrap().string(&none),
            None
        );
    }
}
