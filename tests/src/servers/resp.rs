//! Just enough of the Redis protocol (RESP2) for the harness to check on its servers:
//! send one command, read one reply.
//!
//! Written by hand because a Redis client crate would be a dependency for a handful of
//! administrative commands (PING, CLUSTER INFO, CLUSTER NODES, CLUSTER MYID).

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One exchange must not hang a readiness loop on a server that accepts but never
/// answers.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`; only seen nested in arrays, [`command`] turns a top-level one into an
    /// error.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3 foo`, or `None` for the null bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`, or `None` for the null array `*-1`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a simple or (non-null) bulk string reply, e.g. CLUSTER INFO's.
    pub(crate) fn into_text(self) -> anyhow::Result<String> {
        match self {
            Reply::Simple(text) => Ok(text),
            Reply::Bulk(Some(bytes)) => {
                String::from_utf8(bytes).context("the bulk string reply is not UTF-8")
            }
            other => anyhow::bail!("expected a string reply, got {other}"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(text) => write!(f, "+{text}"),
            Reply::Error(text) => write!(f, "-{text}"),
            Reply::Integer(value) => write!(f, ":{value}"),
            Reply::Bulk(None) => write!(f, "(nil)"),
            Reply::Bulk(Some(bytes)) => write!(f, "{:?}", String::from_utf8_lossy(bytes)),
            Reply::Array(None) => write!(f, "(nil array)"),
            Reply::Array(Some(items)) => {
                write!(f, "[")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// Sends `args` as one command to the server on 127.0.0.1:`port` and reads its reply.
///
/// An error reply (`-ERR ...`) is returned as an error, so callers can `?` it.
pub(crate) async fn command(port: u16, args: &[&str]) -> anyhow::Result<Reply> {
    let name = args.join(" ");
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(&encode(args)).await?;
        let mut received = Vec::new();
        let mut buffer = [0_u8; 4096];
        // Replies may arrive in pieces (CLUSTER NODES is several KB on big clusters):
        // read until a whole reply has been parsed.
        loop {
            if let Some((reply, _)) = parse(&received)? {
                return Ok(reply);
            }
            let read = stream.read(&mut buffer).await?;
            anyhow::ensure!(
                read > 0,
                "the connection closed after {} bytes of an incomplete reply: {:?}",
                received.len(),
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buffer[..read]);
        }
    };
    let reply = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{name} to 127.0.0.1:{port} timed out"))?
        .with_context(|| format!("{name} to 127.0.0.1:{port}"))?;
    match reply {
        Reply::Error(message) => anyhow::bail!("{name} to 127.0.0.1:{port} failed: {message}"),
        reply => Ok(reply),
    }
}

/// A command as a RESP array of bulk strings (which, unlike the inline form, allows
/// any bytes in arguments, empty ones included).
fn encode(args: &[&str]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request
}

/// Parses one reply from the start of `input`: the reply and how many bytes it took,
/// `None` if `input` holds only part of a reply, an error if it is not RESP.
fn parse(input: &[u8]) -> anyhow::Result<Option<(Reply, usize)>> {
    let Some(line_end) = input.windows(2).position(|pair| pair == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = input[..line_end].split_first() else {
        anyhow::bail!("empty RESP line");
    };
    let line = std::str::from_utf8(line).context("a RESP header line is not UTF-8")?;
    let rest = line_end + 2;
    let length = || -> anyhow::Result<i64> {
        line.parse()
            .with_context(|| format!("bad RESP length {line:?}"))
    };
    let parsed = match kind {
        b'+' => Some((Reply::Simple(line.to_owned()), rest)),
        b'-' => Some((Reply::Error(line.to_owned()), rest)),
        b':' => Some((Reply::Integer(length()?), rest)),
        b'$' => match usize::try_from(length()?) {
            // Negative: the null bulk string.
            Err(_) => Some((Reply::Bulk(None), rest)),
            Ok(len) => {
                let end = rest + len;
                match input.get(rest..end + 2) {
                    None => None,
                    Some(body) if body.ends_with(b"\r\n") => {
                        Some((Reply::Bulk(Some(body[..len].to_vec())), end + 2))
                    }
                    Some(_) => anyhow::bail!("a bulk string of {len} bytes lacks its CRLF"),
                }
            }
        },
        b'*' => match usize::try_from(length()?) {
            Err(_) => Some((Reply::Array(None), rest)),
            Ok(count) => {
                let mut items = Vec::with_capacity(count.min(1024));
                let mut offset = rest;
                for _ in 0..count {
                    let Some((item, used)) = parse(&input[offset..])? else {
                        return Ok(None);
                    };
                    items.push(item);
                    offset += used;
                }
                Some((Reply::Array(Some(items)), offset))
            }
        },
        other => anyhow::bail!("unknown RESP type byte {:?}", char::from(other)),
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&["CLUSTER", "INFO"]),
            b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n".to_vec()
        );
        assert_eq!(
            encode(&["SET", ""]),
            b"*2\r\n$3\r\nSET\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn parses_every_reply_type() -> anyhow::Result<()> {
        assert_eq!(
            parse(b"+PONG\r\n")?,
            Some((Reply::Simple("PONG".into()), 7))
        );
        assert_eq!(
            parse(b"-ERR nope\r\n")?,
            Some((Reply::Error("ERR nope".into()), 11))
        );
        assert_eq!(parse(b":-3\r\n")?, Some((Reply::Integer(-3), 5)));
        assert_eq!(parse(b"$-1\r\n")?, Some((Reply::Bulk(None), 5)));
        // A bulk string may contain CRLF: its length, not a line end, delimits it.
        assert_eq!(
            parse(b"$6\r\na:1\r\nb\r\n")?,
            Some((Reply::Bulk(Some(b"a:1\r\nb".to_vec())), 12))
        );
        assert_eq!(
            parse(b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n")?,
            Some((
                Reply::Array(Some(vec![
                    Reply::Integer(1),
                    Reply::Array(Some(vec![Reply::Bulk(Some(b"x".to_vec()))])),
                ])),
                19
            ))
        );
        assert_eq!(parse(b"*-1\r\n")?, Some((Reply::Array(None), 5)));
        Ok(())
    }

    #[test]
    fn partial_replies_ask_for_more() -> anyhow::Result<()> {
        let whole = b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut])?, None, "cut at {cut}");
        }
        assert!(parse(whole)?.is_some());
        Ok(())
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b"$3\r\nabcde\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
    }

    #[test]
    fn into_text_takes_strings_only() -> anyhow::Result<()> {
        assert_eq!(Reply::Simple("OK".into()).into_text()?, "OK");
        assert_eq!(Reply::Bulk(Some(b"x".to_vec())).into_text()?, "x");
        let error = Reply::Integer(7).into_text().expect_err("not a string");
        assert!(error.to_string().contains(":7"), "{error}");
        Ok(())
    }
}
