//! External guards: a service speaking `promptgate.guard.v1.Guard` over
//! gRPC receives the texts a request carries (with roles and locations) and
//! answers allow, reject or mask.
//!
//! Each guard has a deadline and an explicit failure mode: fail closed (the
//! default: a guard that cannot answer refuses the request) or fail open.

use std::time::Duration;

use tokio::sync::OnceCell;
use tonic::transport::{Channel, Endpoint};

use super::{Finding, GuardSpecError, Scope};
use crate::guard_proto::{
    self, check_response::Verdict, guard_client::GuardClient, CheckRequest, Direction,
};
use crate::policy::config::{ExternalSpec, FailureModeSpec, GuardSpec};
use crate::provider::{PartKind, TextSegment};

/// Default deadline of one check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A compiled external guard.
#[derive(Debug)]
pub struct ExternalGuard {
    pub name: String,
    pub address: String,
    pub timeout: Duration,
    pub fail_open: bool,
    /// Rejection defaults when the service gives none.
    pub status: u16,
    pub message: String,
    /// Its masks are restored in the response (`restore`, default true).
    pub restore: bool,
    scope: Scope,
    channel: OnceCell<Channel>,
}

/// What an external guard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalVerdict {
    Allow,
    Reject {
        status: u16,
        message: String,
        rule: String,
    },
    /// Findings in the segment list passed to [`ExternalGuard::check`].
    Mask(Vec<Finding>),
    /// The guard could not answer and fails open: forward unchecked.
    FailedOpen(String),
    /// The guard could not answer and fails closed.
    FailedClosed(String),
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))?;
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn kind_name(k: PartKind) -> &'static str {
    match k {
        PartKind::System => "system",
        PartKind::UserText => "text",
        PartKind::AssistantText => "assistant_text",
        PartKind::ToolResult => "tool_result",
        PartKind::ToolInput => "tool_use_input",
        PartKind::Document => "document",
        PartKind::ToolDefinition => "tool_definition",
    }
}

impl ExternalGuard {
    /// Compiles the `external` entries of `promptGuard.request`.
    pub fn compile_all(specs: &[GuardSpec]) -> Result<Vec<ExternalGuard>, GuardSpecError> {
        let mut out = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let Some(ext) = &spec.external else { continue };
            let fail = |field: &str, message: String| GuardSpecError {
                index,
                field: field.to_owned(),
                message,
            };
            out.push(Self::compile(index, spec, ext).map_err(|(f, m)| fail(f, m))?);
        }
        Ok(out)
    }

    fn compile(
        index: usize,
        spec: &GuardSpec,
        ext: &ExternalSpec,
    ) -> Result<ExternalGuard, (&'static str, String)> {
        if spec.regex.is_some() {
            return Err((
                "external",
                "a guard entry has either `regex` or `external`, not both".into(),
            ));
        }
        if !(ext.address.starts_with("http://") || ext.address.starts_with("https://")) {
            return Err((
                "external.address",
                format!("`{}` is not an http:// or https:// address", ext.address),
            ));
        }
        Endpoint::from_shared(ext.address.clone()).map_err(|e| {
            (
                "external.address",
                format!("`{}` is not a valid address: {e}", ext.address),
            )
        })?;
        let timeout = match &ext.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => parse_duration(t).filter(|d| !d.is_zero()).ok_or((
                "external.timeout",
                format!("`{t}` is not a duration like 500ms or 2s"),
            ))?,
        };
        let mut scope = match &spec.scope {
            None => Scope::default_request(),
            Some(list) if list.is_empty() => {
                return Err(("scope", "an empty scope would read nothing".into()))
            }
            Some(list) => Scope(
                list.iter()
                    .map(|s| super::scope::Selector::from_spec(*s))
                    .collect(),
            ),
        };
        let restore = spec.restore != Some(false);
        if restore && spec.scope.is_none() {
            // As for local masks: restored values come back in the
            // assistant's history, which this guard then reads too.
            use super::scope::Selector;
            for s in [Selector::AssistantMessages, Selector::ToolInput] {
                if !scope.0.contains(&s) {
                    scope.0.push(s);
                }
            }
        }
        let response = spec.response.as_ref();
        let status = response
            .and_then(|r| r.status_code)
            .unwrap_or(super::DEFAULT_REJECT_STATUS);
        if !(400..=599).contains(&status) {
            return Err((
                "response.statusCode",
                format!("{status} is not an error status (400-599)"),
            ));
        }
        Ok(ExternalGuard {
            name: spec
                .name
                .clone()
                .unwrap_or_else(|| format!("request[{index}]")),
            address: ext.address.clone(),
            timeout,
            fail_open: ext.failure_mode == Some(FailureModeSpec::FailOpen),
            status,
            message: response
                .and_then(|r| r.message.clone())
                .unwrap_or_else(|| super::DEFAULT_REJECT_MESSAGE.to_owned()),
            restore,
            scope,
            channel: OnceCell::new(),
        })
    }

    /// Kinds this guard reads.
    pub fn kinds(&self) -> crate::provider::KindSet {
        self.scope.kinds()
    }

    fn failed(&self, why: String) -> ExternalVerdict {
        if self.fail_open {
            ExternalVerdict::FailedOpen(why)
        } else {
            ExternalVerdict::FailedClosed(why)
        }
    }

    /// Asks the service about the segments in this guard's scope.
    pub async fn check(
        &self,
        backend: &str,
        route: &str,
        model: Option<&str>,
        segments: &[TextSegment<'_>],
        latest_user: Option<u32>,
    ) -> ExternalVerdict {
        // Indices of the segments sent, so spans map back.
        let sent: Vec<usize> = (0..segments.len())
            .filter(|&i| {
                self.scope
                    .selects(segments[i].kind, &segments[i].location, latest_user)
            })
            .collect();
        if sent.is_empty() {
            return ExternalVerdict::Allow;
        }
        let request = CheckRequest {
            backend: backend.to_owned(),
            route_type: route.to_owned(),
            direction: Direction::Request as i32,
            model: model.unwrap_or_default().to_owned(),
            segments: sent
                .iter()
                .map(|&i| guard_proto::TextSegment {
                    role: segments[i].role.as_str().to_owned(),
                    location: segments[i].location.to_string(),
                    kind: kind_name(segments[i].kind).to_owned(),
                    text: segments[i].text().into_owned(),
                })
                .collect(),
        };
        let channel = match self
            .channel
            .get_or_try_init(|| async {
                Endpoint::from_shared(self.address.clone())
                    .map(|e| e.connect_timeout(self.timeout).connect_lazy())
            })
            .await
        {
            Ok(c) => c.clone(),
            Err(e) => return self.failed(format!("bad address: {e}")),
        };
        let mut client = GuardClient::new(channel);
        let mut req = tonic::Request::new(request);
        req.set_timeout(self.timeout);
        let answer = match tokio::time::timeout(self.timeout, client.check(req)).await {
            Err(_) => return self.failed(format!("no answer within {:?}", self.timeout)),
            Ok(Err(status)) => {
                return self.failed(format!("gRPC {:?}: {}", status.code(), status.message()))
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        match answer.verdict {
            None | Some(Verdict::Allow(_)) => ExternalVerdict::Allow,
            Some(Verdict::Reject(r)) => ExternalVerdict::Reject {
                status: match u16::try_from(r.status_code) {
                    Ok(s) if (400..=599).contains(&s) => s,
                    _ => self.status,
                },
                message: if r.message.is_empty() {
                    self.message.clone()
                } else {
                    r.message
                },
                rule: if r.rule.is_empty() {
                    self.name.clone()
                } else {
                    format!("{}/{}", self.name, r.rule)
                },
            },
            Some(Verdict::Mask(m)) => {
                let mut findings = Vec::with_capacity(m.spans.len());
                for span in m.spans {
                    let Some(&seg) = sent.get(span.segment as usize) else {
                        return self.failed(format!(
                            "mask span names segment {} of {}",
                            span.segment,
                            sent.len()
                        ));
                    };
                    let literal = segments[seg].literal;
                    let (s, e) = (span.start as usize, span.end as usize);
                    // Spans are offsets of the decoded text sent; findings
                    // are ranges of the literal.
                    let range = if s <= e {
                        crate::provider::literal::raw_range(literal, s..e)
                    } else {
                        None
                    };
                    let Some(range) = range else {
                        return self.failed(format!(
                            "mask span {s}..{e} is not a valid range of segment {}",
                            span.segment
                        ));
                    };
                    if range.is_empty() {
                        continue;
                    }
                    let placeholder = if span.replacement.is_empty() {
                        super::DEFAULT_MASK_PLACEHOLDER.to_owned()
                    } else {
                        span.replacement
                    };
                    findings.push(Finding {
                        rule: usize::MAX,
                        segment: seg,
                        range,
                        placeholder,
                        restore: self.restore,
                    });
                }
                ExternalVerdict::Mask(findings)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1h"), None);
    }

    #[test]
    fn compile_checks_the_entry() {
        let specs: Vec<GuardSpec> = serde_yaml::from_str(
            r#"
- regex: {matches: [x]}
- name: dlp
  external: {address: "http://127.0.0.1:7000", timeout: 250ms, failureMode: FailOpen}
- external: {address: "http://127.0.0.1:7001"}
"#,
        )
        .unwrap();
        let g = ExternalGuard::compile_all(&specs).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[0].name.as_str(), g[0].timeout, g[0].fail_open),
            ("dlp", Duration::from_millis(250), true)
        );
        assert_eq!(
            (g[1].name.as_str(), g[1].timeout, g[1].fail_open),
            ("request[2]", DEFAULT_TIMEOUT, false)
        );
        for (yaml, field) in [
            ("[{external: {address: 'ftp://x'}}]", "external.address"),
            (
                "[{external: {address: 'http://x', timeout: soon}}]",
                "external.timeout",
            ),
            (
                "[{external: {address: 'http://x'}, regex: {matches: [x]}}]",
                "external",
            ),
        ] {
            let specs: Vec<GuardSpec> = serde_yaml::from_str(yaml).unwrap();
            assert_eq!(
                ExternalGuard::compile_all(&specs).unwrap_err().field,
                field,
                "{yaml}"
            );
        }
    }
}
