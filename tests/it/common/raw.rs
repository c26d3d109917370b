//! A bare-bones protocol client for what drivers will not send: malformed and oversized
//! messages, simple-protocol COPY, hand-made pipelines.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A frame: tag and body.
pub type Frame = (u8, Vec<u8>);

pub fn startup_packet(user: &str, db: &str) -> Vec<u8> {
    startup_packet_with(&[("user", user), ("database", db)])
}

/// A protocol 3.0 StartupMessage with these parameters, in order.
pub fn startup_packet_with(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

/// A frame with `tag` and `body`.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frame(b'Q', &body)
}

impl Raw {
    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and logs in (trust), reading up to the first ReadyForQuery.
    pub async fn login(addr: SocketAddr, user: &str, db: &str) -> (Raw, Vec<Frame>) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
        };
        raw.send(&startup_packet(user, db)).await;
        let greeting = raw.until_ready().await;
        (raw, greeting)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// The next frame, or `None` at EOF. Panics after 10 s of silence.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() > len {
                    let frame: Vec<u8> = self.buf.drain(..len + 1).collect();
                    return Some((frame[0], frame[5..].to_vec()));
                }
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("no answer within 10 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Frames up to and including the next ReadyForQuery (or EOF).
    pub async fn until_ready(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.recv().await {
            let done = f.0 == b'Z';
            frames.push(f);
            if done {
                break;
            }
        }
        frames
    }
}

/// The SQLSTATE in an ErrorResponse body.
pub fn error_code(body: &[u8]) -> String {
    field(body, b'C')
}

/// The message in an ErrorResponse body.
pub fn error_message(body: &[u8]) -> String {
    field(body, b'M')
}

fn field(body: &[u8], kind: u8) -> String {
    let mut pos = 0;
    while pos < body.len() && body[pos] != 0 {
        let k = body[pos];
        let end = body[pos + 1..]
            .iter()
            .position(|&b| b == 0)
            .map(|e| pos + 1 + e)
            .unwrap_or(body.len());
        if k == kind {
            return String::from_utf8_lossy(&body[pos + 1..end]).into_owned();
        }
        pos = end + 1;
    }
    String::new()
}
