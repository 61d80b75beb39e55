//! Close status codes (RFC 6455 §7.4) and which of them may appear on the wire.

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reported locally when a close frame had no status code; never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reported locally when the connection dropped without a close frame; never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether this code may be carried by a close frame, sent or received.
    ///
    /// 1000–1003 and 1007–1011 are defined by RFC 6455 for use on the wire;
    /// 3000–3999 are registered for libraries and frameworks, 4000–4999 are private.
    /// Everything else (0–999, 1004–1006, 1012–2999 unassigned here, 1015, ≥ 5000)
    /// is a protocol error when received and refused when sent.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Safe code over many inputs: long under Miri, which has nothing to find in it.
    #[cfg_attr(miri, ignore)]
    fn wire_validity_of_every_code() {
        for code in 0..=u16::MAX {
            let expected =
                (1000..=1003).contains(&code) || (1007..=1011).contains(&code) || (3000..=4999).contains(&code);
            assert_eq!(CloseCode(code).is_valid_on_wire(), expected, "code {code}");
        }
        assert!(!CloseCode::NO_STATUS.is_valid_on_wire());
        assert!(!CloseCode::ABNORMAL.is_valid_on_wire());
        assert!(!CloseCode(1015).is_valid_on_wire());
    }
}
