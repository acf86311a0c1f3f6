//! Helpers shared by the apiserver self-tests: a raw HTTP/1.1 client, so tests see exactly
//! what the server sends (status codes, headers, chunked watch streams).

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// A response with its body read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn send_raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let addr = base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.as_str());
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        req = req.header("user-agent", "apiserver-selftest/1.0");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    sender.send_request(req).await.expect("send")
}

/// Sends one request and reads the whole response.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    let (body, mut hs) = match body {
        Some(v) => (serde_json::to_vec(v).expect("encode"), headers.to_vec()),
        None => (Vec::new(), headers.to_vec()),
    };
    if !body.is_empty()
        && !hs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        hs.push(("content-type", "application/json"));
    }
    let resp = send_raw(base, method, path, &hs, body).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
        .await
        .expect("body timeout")
        .expect("body")
        .to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(base: &str, path: &str) -> Resp {
    request(base, "GET", path, &[], None).await
}

pub async fn post(base: &str, path: &str, body: &Value) -> Resp {
    request(base, "POST", path, &[], Some(body)).await
}

pub async fn put(base: &str, path: &str, body: &Value) -> Resp {
    request(base, "PUT", path, &[], Some(body)).await
}

pub async fn delete(base: &str, path: &str) -> Resp {
    request(base, "DELETE", path, &[], None).await
}

pub async fn patch(base: &str, path: &str, content_type: &str, body: &Value) -> Resp {
    request(
        base,
        "PATCH",
        path,
        &[("content-type", content_type)],
        Some(body),
    )
    .await
}

/// An open watch stream that yields one parsed event per line.
pub struct WatchStream {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl WatchStream {
    /// The next event, None when the stream ended; panics after `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("event JSON"));
            }
            if self.done {
                return None;
            }
            let frame = tokio::time::timeout(wait, self.body.frame())
                .await
                .expect("timed out waiting for a watch event");
            match frame {
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        self.buf.extend_from_slice(d);
                    }
                }
                _ => self.done = true,
            }
        }
    }

    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(Duration::from_secs(10)).await
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_non_bookmark(&mut self) -> Option<Value> {
        loop {
            let ev = self.next().await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }
}

pub async fn watch(base: &str, path: &str) -> WatchStream {
    let resp = send_raw(base, "GET", path, &[], Vec::new()).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    WatchStream {
        status,
        headers,
        body: resp.into_body(),
        buf: Vec::new(),
        done: false,
    }
}

pub fn cm(name: &str, labels: Value) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    })
}

pub const CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {
    "group": "example.com",
    "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}},
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
    }]
  }
}"#;

pub fn crd() -> Value {
    serde_json::from_str(CRD).expect("crd json")
}
