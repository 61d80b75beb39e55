//! permessage-deflate negotiation (RFC 7692 §7.1): a server picks the first
//! offer it can honour and answers with exactly what it will do; a client
//! offers what its config says and checks that the answer fits the offer.

use super::config::{DeflateConfig, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::proto::error::Error;
use crate::proto::handshake::extensions::{Extension, Param};
use crate::proto::role::Role;

pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The agreed parameters of a connection (both sides' view is the same).
/// `*_window_named` records whether the response named that window, so
/// that the response can be written back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
    pub server_window_named: bool,
    pub client_window_named: bool,
}

impl Agreed {
    /// Whether the side in `role` starts every message it sends afresh.
    pub fn no_context_takeover(&self, sender: Role) -> bool {
        match sender {
            Role::Server => self.server_no_context_takeover,
            Role::Client => self.client_no_context_takeover,
        }
    }

    /// The largest window the side in `role` may compress with.
    pub fn window_bits(&self, sender: Role) -> u8 {
        match sender {
            Role::Server => self.server_max_window_bits,
            Role::Client => self.client_max_window_bits,
        }
    }

    /// The agreement in 16 bits (never 0), for a session to keep in its padding.
    pub fn pack(&self) -> u16 {
        let flags = [
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_window_named,
            self.client_window_named,
        ];
        let bits = flags
            .iter()
            .enumerate()
            .fold(0u16, |acc, (i, &f)| acc | (u16::from(f) << i));
        bits | (u16::from(self.server_max_window_bits) << 4) | (u16::from(self.client_max_window_bits) << 8) | 1 << 12
    }

    /// What [`Agreed::pack`] made; `None` for 0.
    pub fn unpack(packed: u16) -> Option<Agreed> {
        (packed != 0).then_some(Agreed {
            server_no_context_takeover: packed & 1 != 0,
            client_no_context_takeover: packed & 2 != 0,
            server_window_named: packed & 4 != 0,
            client_window_named: packed & 8 != 0,
            server_max_window_bits: (packed >> 4 & 0xf) as u8,
            client_max_window_bits: (packed >> 8 & 0xf) as u8,
        })
    }

    /// The `Sec-WebSocket-Extensions` value of the response.
    pub fn response(&self) -> String {
        let mut text = EXTENSION_NAME.to_owned();
        if self.server_no_context_takeover {
            text.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            text.push_str("; client_no_context_takeover");
        }
        if self.server_window_named {
            text.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        if self.client_window_named {
            text.push_str(&format!("; client_max_window_bits={}", self.client_max_window_bits));
        }
        text
    }
}

/// The parameters of one offer or response, each at most once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: named without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window size as RFC 7692 §7.1.2 writes it: 8-15, no leading zero.
fn window_value(value: &Option<String>) -> Result<Option<u8>, &'static str> {
    let Some(text) = value else { return Ok(None) };
    let bits = match text.as_str() {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => text.parse().expect("digits"),
        _ => return Err("window bits not a number from 8 to 15"),
    };
    debug_assert!((MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits));
    Ok(Some(bits))
}

/// Reads the parameters of one permessage-deflate element: unknown, repeated
/// or ill-valued parameters make it invalid.
fn parse_params(params: &[Param<'_>]) -> Result<Params, &'static str> {
    let mut p = Params::default();
    for (i, param) in params.iter().enumerate() {
        if params[..i]
            .iter()
            .any(|earlier| earlier.name.eq_ignore_ascii_case(param.name))
        {
            return Err("a permessage-deflate parameter is repeated");
        }
        let flag = || match param.value {
            None => Ok(true),
            Some(_) => Err("a context takeover parameter has a value"),
        };
        match param.name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => p.server_no_context_takeover = flag()?,
            "client_no_context_takeover" => p.client_no_context_takeover = flag()?,
            "server_max_window_bits" => match window_value(&param.value)? {
                None => return Err("server_max_window_bits without a value"),
                bits => p.server_max_window_bits = bits,
            },
            "client_max_window_bits" => p.client_max_window_bits = Some(window_value(&param.value)?),
            _ => return Err("an unknown permessage-deflate parameter"),
        }
    }
    Ok(p)
}

fn is_deflate(extension: &Extension<'_>) -> bool {
    extension.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

/// Server: the parameters to answer the first valid permessage-deflate offer
/// with, or `None` (the extension is declined, the connection goes on
/// without it). Every valid offer can be honoured: any window the client asks
/// the server to keep to, any it names for itself.
pub fn accept(offers: &[Extension<'_>], config: &DeflateConfig) -> Option<Agreed> {
    offers.iter().filter(|e| is_deflate(e)).find_map(|offer| {
        let p = parse_params(&offer.params).ok()?;
        let server_bits = p
            .server_max_window_bits
            .map_or(config.server_max_window_bits(), |asked| {
                asked.min(config.server_max_window_bits())
            });
        // Only a client that named client_max_window_bits may be given a
        // window; one that did not may use 15 bits, and is inflated with 15.
        let client_bits = match p.client_max_window_bits {
            None => MAX_WINDOW_BITS,
            Some(asked) => asked.unwrap_or(MAX_WINDOW_BITS).min(config.client_max_window_bits()),
        };
        Some(Agreed {
            server_no_context_takeover: p.server_no_context_takeover || config.server_no_context_takeover(),
            client_no_context_takeover: p.client_no_context_takeover || config.client_no_context_takeover(),
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            // Named when asked for (the RFC requires the answer), or when the
            // server keeps to a smaller window than the client assumes.
            server_window_named: p.server_max_window_bits.is_some() || server_bits < MAX_WINDOW_BITS,
            client_window_named: p.client_max_window_bits.is_some() && client_bits < MAX_WINDOW_BITS,
        })
    })
}

/// Client: the `Sec-WebSocket-Extensions` value offering what `config` says.
/// The client's own window is always named, so that a server may lower it.
pub fn offer(config: &DeflateConfig) -> String {
    let mut text = EXTENSION_NAME.to_owned();
    if config.server_no_context_takeover() {
        text.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover() {
        text.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits() < MAX_WINDOW_BITS {
        text.push_str(&format!("; server_max_window_bits={}", config.server_max_window_bits()));
    }
    if config.client_max_window_bits() < MAX_WINDOW_BITS {
        text.push_str(&format!("; client_max_window_bits={}", config.client_max_window_bits()));
    } else {
        text.push_str("; client_max_window_bits");
    }
    text
}

/// Client: checks the server's answer to [`offer`]. `Ok(None)`: declined.
pub fn check_response(answer: &[Extension<'_>], config: &DeflateConfig) -> Result<Option<Agreed>, Error> {
    let refuse = Error::Handshake;
    let accepted = match answer {
        [] => return Ok(None),
        [one] if is_deflate(one) => one,
        [_] => return Err(refuse("the server selected an extension that was not offered")),
        _ => return Err(refuse("the server selected more than one extension")),
    };
    let p = parse_params(&accepted.params).map_err(refuse)?;
    if config.server_no_context_takeover() && !p.server_no_context_takeover {
        return Err(refuse("the server did not accept server_no_context_takeover"));
    }
    let offered_server = config.server_max_window_bits();
    let server_bits = match p.server_max_window_bits {
        Some(bits) if bits > offered_server => return Err(refuse("server_max_window_bits larger than offered")),
        Some(bits) => bits,
        None if offered_server < MAX_WINDOW_BITS => {
            return Err(refuse("the server did not accept server_max_window_bits"))
        }
        None => MAX_WINDOW_BITS,
    };
    let client_bits = match p.client_max_window_bits {
        None => config.client_max_window_bits(),
        Some(None) => return Err(refuse("client_max_window_bits without a value in the response")),
        Some(Some(bits)) if bits > config.client_max_window_bits() => {
            return Err(refuse("client_max_window_bits larger than offered"))
        }
        Some(Some(bits)) => bits,
    };
    Ok(Some(Agreed {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover || config.client_no_context_takeover(),
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        server_window_named: p.server_max_window_bits.is_some(),
        client_window_named: p.client_max_window_bits.is_some(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::extensions::parse;

    fn server(offer: &str, config: &DeflateConfig) -> Option<String> {
        accept(&parse(offer.as_bytes()).unwrap(), config).map(|a| a.response())
    }

    fn client(answer: &str, config: &DeflateConfig) -> Result<Option<Agreed>, Error> {
        let list = if answer.is_empty() {
            Vec::new()
        } else {
            parse(answer.as_bytes()).unwrap()
        };
        check_response(&list, config)
    }

    fn takeover() -> DeflateConfig {
        DeflateConfig::dedicated(15).unwrap()
    }

    #[test]
    fn rfc_7692_section_8_examples() {
        // §7.1.3 and §8: offers a server with default (takeover) settings accepts.
        let c = takeover();
        assert_eq!(server("permessage-deflate", &c).unwrap(), "permessage-deflate");
        assert_eq!(
            server("permessage-deflate; client_max_window_bits", &c).unwrap(),
            "permessage-deflate"
        );
        assert_eq!(
            server(
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
                &c
            )
            .unwrap(),
            "permessage-deflate; server_max_window_bits=10"
        );
        assert_eq!(
            server("permessage-deflate; server_no_context_takeover", &c).unwrap(),
            "permessage-deflate; server_no_context_takeover"
        );
    }

    #[test]
    // Safe code over many inputs: long under Miri, which has nothing to find in it.
    #[cfg_attr(miri, ignore)]
    fn the_first_valid_offer_wins_and_invalid_ones_are_declined() {
        let c = takeover();
        for invalid in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=x",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"16\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; Server_Max_Window_Bits=10; server_max_window_bits=10",
            "permessage-deflate; mystery",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(server(invalid, &c), None, "{invalid}");
            let then_valid = format!("{invalid}, permessage-deflate; client_no_context_takeover");
            assert_eq!(
                server(&then_valid, &c).as_deref(),
                Some("permessage-deflate; client_no_context_takeover"),
                "{then_valid}"
            );
        }
        assert_eq!(
            server("permessage-deflate; server_max_window_bits=\"12\"", &c).as_deref(),
            Some("permessage-deflate; server_max_window_bits=12")
        );
    }

    #[test]
    // Large inputs: minutes under Miri; the small cases cover the unsafe code.
    #[cfg_attr(miri, ignore)]
    fn every_parameter_combination_the_server_answers() {
        let windows = [None, Some(8u8), Some(12), Some(15)];
        for server_nct in [false, true] {
            for client_nct in [false, true] {
                for sw in windows {
                    for cw in [None, Some(None), Some(Some(8u8)), Some(Some(11)), Some(Some(15))] {
                        for config in [
                            DeflateConfig::shared(),
                            takeover(),
                            DeflateConfig::dedicated(10).unwrap(),
                        ] {
                            let mut offer = EXTENSION_NAME.to_owned();
                            if server_nct {
                                offer += "; server_no_context_takeover";
                            }
                            if client_nct {
                                offer += "; client_no_context_takeover";
                            }
                            if let Some(bits) = sw {
                                offer += &format!("; server_max_window_bits={bits}");
                            }
                            match cw {
                                Some(Some(bits)) => offer += &format!("; client_max_window_bits={bits}"),
                                Some(None) => offer += "; client_max_window_bits",
                                None => {}
                            }
                            let agreed = accept(&parse(offer.as_bytes()).unwrap(), &config).unwrap();
                            assert_eq!(Agreed::unpack(agreed.pack()), Some(agreed));
                            // Asked-for no-context-takeover is always granted.
                            assert!(agreed.server_no_context_takeover >= server_nct, "{offer}");
                            assert!(agreed.client_no_context_takeover >= client_nct, "{offer}");
                            // The server keeps within what was asked and configured.
                            assert!(agreed.server_max_window_bits <= sw.unwrap_or(15));
                            assert!(agreed.server_max_window_bits <= config.server_max_window_bits());
                            // A named server window is answered; a client window only if offered.
                            assert!(sw.is_none() || agreed.server_window_named, "{offer}");
                            assert!(cw.is_some() || !agreed.client_window_named, "{offer}");
                            if let Some(Some(bits)) = cw {
                                assert!(agreed.client_max_window_bits <= bits);
                            }
                            // The client accepts the answer its own offer gets.
                            let response = agreed.response();
                            let mut client_config = config.clone();
                            client_config.set_server_no_context_takeover(server_nct);
                            client_config.set_client_no_context_takeover(client_nct);
                            client_config.set_server_max_window_bits(sw.unwrap_or(15)).unwrap();
                            client_config
                                .set_client_max_window_bits(cw.flatten().unwrap_or(15))
                                .unwrap();
                            let seen = client(&response, &client_config).unwrap().unwrap();
                            assert_eq!(seen.server_no_context_takeover, agreed.server_no_context_takeover);
                            assert_eq!(seen.client_no_context_takeover, agreed.client_no_context_takeover);
                            assert_eq!(seen.server_max_window_bits, agreed.server_max_window_bits, "{offer}");
                            assert!(seen.client_max_window_bits <= agreed.client_max_window_bits.max(8));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_shared_mode_asks_for_no_context_takeover_both_ways() {
        let response = server("permessage-deflate; client_max_window_bits", &DeflateConfig::shared()).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn the_client_offers_its_config() {
        assert_eq!(
            offer(&DeflateConfig::shared()),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"
        );
        assert_eq!(
            offer(&DeflateConfig::dedicated(10).unwrap()),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
        );
    }

    #[test]
    fn the_client_refuses_answers_that_do_not_fit_its_offer() {
        let shared = DeflateConfig::shared();
        let dedicated = DeflateConfig::dedicated(10).unwrap();
        let open = takeover();
        for (answer, config) in [
            ("permessage-deflate; client_no_context_takeover", &shared),
            ("permessage-deflate; server_max_window_bits=11", &dedicated),
            ("permessage-deflate", &dedicated),
            (
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
                &dedicated,
            ),
            (
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
                &dedicated,
            ),
            ("permessage-deflate; server_max_window_bits=7", &open),
            ("permessage-deflate; server_max_window_bits", &open),
            ("permessage-deflate; mystery", &open),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                &open,
            ),
            ("permessage-deflate, permessage-deflate", &open),
            ("x-webkit-deflate-frame", &open),
        ] {
            assert!(matches!(client(answer, config), Err(Error::Handshake(_))), "{answer}");
        }
        assert_eq!(client("", &open), Ok(None));
        let agreed = client(
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8",
            &open,
        )
        .unwrap()
        .unwrap();
        assert!(agreed.client_no_context_takeover && !agreed.server_no_context_takeover);
        assert_eq!((agreed.server_max_window_bits, agreed.client_max_window_bits), (9, 8));
        assert_eq!(agreed.window_bits(Role::Client), 8);
        assert!(agreed.no_context_takeover(Role::Client));
    }
}
