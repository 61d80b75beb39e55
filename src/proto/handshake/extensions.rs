//! The `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1): a
//! comma-separated list of extensions, each a token with `;`-separated
//! parameters, a parameter a token with an optional token or quoted-string
//! value. Several header lines make one list. What the extensions mean is
//! left to their own modules (`proto::deflate`).

use super::header_values;
use crate::proto::config::is_token;

/// One parameter: its name, and its value (a quoted string already unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: Option<String>,
}

/// One extension of the list, with its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension<'a> {
    pub name: &'a str,
    pub params: Vec<Param<'a>>,
}

/// The header's grammar was broken (the whole header is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Every extension named by the `Sec-WebSocket-Extensions` lines of a head, in order.
pub(crate) fn parse_headers<'h>(headers: &'h [httparse::Header<'_>]) -> Result<Vec<Extension<'h>>, Malformed> {
    let mut list = Vec::new();
    for value in header_values(headers, "Sec-WebSocket-Extensions") {
        list.extend(parse(value)?);
    }
    Ok(list)
}

/// Parses one header value. Empty list elements (`a, , b`) are allowed, as
/// RFC 7230 §7 asks of a recipient; an all-empty value is not.
pub fn parse(value: &[u8]) -> Result<Vec<Extension<'_>>, Malformed> {
    let text = std::str::from_utf8(value).map_err(|_| Malformed)?;
    let mut lexer = Lexer { text, pos: 0 };
    let mut list = Vec::new();
    loop {
        lexer.skip_spaces();
        if lexer.eat(',') {
            continue;
        }
        if lexer.at_end() {
            break;
        }
        let name = lexer.token()?;
        let mut params = Vec::new();
        loop {
            lexer.skip_spaces();
            if !lexer.eat(';') {
                break;
            }
            lexer.skip_spaces();
            let param = lexer.token()?;
            lexer.skip_spaces();
            let value = if lexer.eat('=') {
                lexer.skip_spaces();
                Some(lexer.value()?)
            } else {
                None
            };
            params.push(Param { name: param, value });
        }
        list.push(Extension { name, params });
        lexer.skip_spaces();
        if !lexer.at_end() && !lexer.eat(',') {
            return Err(Malformed);
        }
    }
    if list.is_empty() {
        return Err(Malformed);
    }
    Ok(list)
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t']).len();
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.rest().starts_with(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn token(&mut self) -> Result<&'a str, Malformed> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !c.is_ascii() || !is_token(c.encode_utf8(&mut [0; 4])))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(Malformed);
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// A token, or a quoted string (RFC 7230 §3.2.6, with `\` escapes).
    fn value(&mut self) -> Result<String, Malformed> {
        if !self.eat('"') {
            return self.token().map(str::to_owned);
        }
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) if escaped == '\t' || (' '..='~').contains(&escaped) => value.push(escaped),
                    _ => return Err(Malformed),
                },
                '\t' | ' '..='~' => value.push(c),
                _ => return Err(Malformed),
            }
        }
        Err(Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An extension as owned (name, [(param, value)]).
    type Owned = (String, Vec<(String, Option<String>)>);

    fn names(value: &str) -> Vec<Owned> {
        parse(value.as_bytes())
            .unwrap()
            .into_iter()
            .map(|e| {
                let params = e.params.into_iter().map(|p| (p.name.to_owned(), p.value)).collect();
                (e.name.to_owned(), params)
            })
            .collect()
    }

    #[test]
    fn rfc_7692_examples_parse() {
        // RFC 7692 §5.1 and §7.1.3 offers.
        let list = names(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].0, "permessage-deflate");
        assert_eq!(
            list[0].1,
            vec![
                ("client_max_window_bits".into(), None),
                ("server_max_window_bits".into(), Some("10".into()))
            ]
        );
        assert_eq!(list[1].1, vec![("client_max_window_bits".into(), None)]);
        let quoted = names("permessage-deflate;server_max_window_bits=\"10\"");
        assert_eq!(quoted[0].1, vec![("server_max_window_bits".into(), Some("10".into()))]);
        let spaced = names(" foo ;\ta = b , , bar");
        assert_eq!(spaced[0], ("foo".into(), vec![("a".into(), Some("b".into()))]));
        assert_eq!(spaced[1], ("bar".into(), vec![]));
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            " , ",
            "a;",
            "a;=1",
            "a b",
            "a;b=",
            "a;b=\"1",
            "a;b=\"\\\u{7f}\"",
            "a;b=c d",
            "a;b=(1)",
            "permessage-deflate;server_max_window_bits=1 0",
            "é",
            "a;;b",
        ] {
            assert_eq!(parse(bad.as_bytes()), Err(Malformed), "{bad:?}");
        }
        assert_eq!(parse(b"\xff"), Err(Malformed));
    }
}
