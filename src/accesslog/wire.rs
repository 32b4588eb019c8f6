//! The access-log messages as promptgate reads them: of an entry, only its
//! dynamic metadata (each namespace left as bytes until asked for) and its
//! request id. The field numbers are those of
//! `envoy.service.accesslog.v3.StreamAccessLogsMessage` and
//! `envoy.data.accesslog.v3.HTTPAccessLogEntry`; everything else an entry
//! carries (addresses, timings, TLS properties, headers, the response,
//! other metadata namespaces) is stepped over on the wire, not decoded into
//! strings and maps. envoy-types' full messages cost promptgate ~30 µs of
//! CPU per reported answer under load (`./scripts/bench-budgets.sh`, the
//! "usage read" subject against "no budgets"); the tests hold these to
//! them, encoding envoy-types' messages and reading them back here.

use std::collections::HashMap;

use envoy_types::pb::google::protobuf::Struct;
use prost::Message;

/// `StreamAccessLogsMessage`: its HTTP entries (the `http_logs` member of
/// the `log_entries` oneof; TCP entries and the identifier are skipped).
#[derive(Clone, PartialEq, Message)]
pub struct LogsMessage {
    #[prost(message, optional, tag = "2")]
    pub http_logs: Option<HttpEntries>,
}

/// `StreamAccessLogsMessage.HTTPAccessLogEntries`.
#[derive(Clone, PartialEq, Message)]
pub struct HttpEntries {
    #[prost(message, repeated, tag = "1")]
    pub log_entry: Vec<Entry>,
}

/// `HTTPAccessLogEntry`: its common properties and its request.
#[derive(Clone, PartialEq, Message)]
pub struct Entry {
    #[prost(message, optional, tag = "1")]
    pub common_properties: Option<Common>,
    #[prost(message, optional, tag = "3")]
    pub request: Option<RequestProperties>,
}

/// `AccessLogCommon`: its dynamic metadata.
#[derive(Clone, PartialEq, Message)]
pub struct Common {
    #[prost(message, optional, tag = "17")]
    pub metadata: Option<Metadata>,
}

/// `HTTPRequestProperties`: its request id.
#[derive(Clone, PartialEq, Message)]
pub struct RequestProperties {
    #[prost(string, tag = "9")]
    pub request_id: String,
}

/// `config.core.v3.Metadata`: each namespace's `Struct` as its wire bytes
/// (a message and a bytes field are written alike).
#[derive(Clone, PartialEq, Message)]
pub struct Metadata {
    #[prost(map = "string, bytes", tag = "1")]
    pub filter_metadata: HashMap<String, Vec<u8>>,
}

impl Entry {
    /// The metadata namespace `name`, decoded; `None` when the entry has
    /// none of that name or its bytes are no `Struct`.
    pub fn namespace(&self, name: &str) -> Option<Struct> {
        let bytes = self
            .common_properties
            .as_ref()?
            .metadata
            .as_ref()?
            .filter_metadata
            .get(name)?;
        Struct::decode(bytes.as_slice()).ok()
    }

    /// The request's id, when it has one.
    pub fn request_id(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.request_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::data::accesslog::v3::{
        AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, TcpAccessLogEntry,
    };
    use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::{
        HttpAccessLogEntries, Identifier, LogEntries, TcpAccessLogEntries,
    };
    use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage;

    /// Envoy's messages, written with envoy-types, read here: the HTTP
    /// entries with their request ids; a TCP batch has none.
    #[test]
    fn envoy_messages_read_back() {
        let http = |id: &str| HttpAccessLogEntry {
            common_properties: Some(AccessLogCommon {
                route_name: "llm".into(),
                ..Default::default()
            }),
            request: Some(HttpRequestProperties {
                request_id: id.into(),
                path: "/v1/messages".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let msg = StreamAccessLogsMessage {
            identifier: Some(Identifier {
                log_name: "promptgate_usage".into(),
                ..Default::default()
            }),
            log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
                log_entry: vec![http("a"), http("b")],
            })),
        };
        let read = LogsMessage::decode(msg.encode_to_vec().as_slice()).unwrap();
        let ids: Vec<_> = read
            .http_logs
            .unwrap()
            .log_entry
            .iter()
            .map(|e| e.request_id().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["a", "b"]);

        let tcp = StreamAccessLogsMessage {
            identifier: None,
            log_entries: Some(LogEntries::TcpLogs(TcpAccessLogEntries {
                log_entry: vec![TcpAccessLogEntry::default()],
            })),
        };
        let read = LogsMessage::decode(tcp.encode_to_vec().as_slice()).unwrap();
        assert!(read.http_logs.is_none());
    }
}
