//! Key unique identifiers `hsm::<slot>::<label>`, the form the Cosmian KMS
//! uses for HSM keys (docs/protocol.md "Keys"), shared by hsmd, hsmctl and
//! kms-frontend so that one key has one name everywhere.
//!
//! - `<slot>` is the PKCS#11 slot ID (`CK_SLOT_ID`) in plain decimal: `0`,
//!   `1365358982`; never `+1`, `01` or ` 1`, which would give one key two names.
//! - `<label>` is the key's `CKA_LABEL` (PKCS#11 v2.40 section 4.4), 1 to
//!   [`MAX_LABEL_LEN`] bytes, written as text: UTF-8 characters stand for
//!   themselves, a backslash is written `\\`, and each byte that is not UTF-8,
//!   or that belongs to a control or invisible formatting character (see
//!   [`needs_escape`]), is written `\xHH` (two hex digits). So every label has
//!   exactly one spelling, and no spelling holds a raw control character.
//! - The public key of the key pair whose private key is `L` is named `L_pk`
//!   ([`PUBLIC_SUFFIX`], [`Label::public_key`], [`Label::pair_private`]).

use std::fmt;

/// Longest `CKA_LABEL` a uid names, in bytes.
pub const MAX_LABEL_LEN: usize = 128;

/// What a uid starts with.
pub const UID_PREFIX: &str = "hsm::";

/// Suffix of the public key's name in a key pair: the public key of the pair
/// `L` is `L_pk`.
pub const PUBLIC_SUFFIX: &str = "_pk";

/// Most characters of refused input quoted in a [`UidError`].
const SHOWN_MAX: usize = 160;

/// The accepted form, as [`UidError`] names it.
const UID_FORM: &str = "hsm::<slot>::<label> with the slot ID in plain decimal and a label of 1 to 128 bytes (a backslash written \\\\, a control character or non-UTF-8 byte as \\xHH), e.g. hsm::0::my-key";
const LABEL_FORM: &str = "1 to 128 bytes of text (a backslash written \\\\, a control character or non-UTF-8 byte as \\xHH), e.g. my-key";

/// Why a uid or a label was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidFault {
    /// The text does not start with `hsm::`.
    NoPrefix,
    /// No `::` between the slot and the label.
    NoSeparator,
    /// The slot is not a slot ID in plain decimal (`+1`, `01`, ` 1`, `x`).
    BadSlot,
    /// The label is empty.
    EmptyLabel,
    /// The label is longer than [`MAX_LABEL_LEN`] bytes; holds its length.
    TooLong(usize),
    /// A raw character that must be written `\xHH`; holds it.
    RawControl(char),
    /// A `\` that is not followed by `\` or `xHH`.
    BadEscape,
    /// `\xHH` for a byte that may be written as itself (one spelling per label).
    NeedlessEscape,
    /// A label hsmd would create that is not plain printable text.
    NotPrintable,
}

impl fmt::Display for UidFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPrefix => write!(f, "does not start with {UID_PREFIX}"),
            Self::NoSeparator => f.write_str("has no :: between the slot and the label"),
            Self::BadSlot => f.write_str("the slot is not a slot ID in plain decimal"),
            Self::EmptyLabel => f.write_str("the label is empty"),
            Self::TooLong(n) => write!(
                f,
                "the label is {n} bytes long; at most {MAX_LABEL_LEN} are accepted"
            ),
            Self::RawControl(c) => write!(
                f,
                "the label holds the raw character {}; write it as \\xHH",
                c.escape_unicode()
            ),
            Self::BadEscape => f.write_str(
                "the label holds a \\ that is not \\\\ or \\xHH (two lower-case hex digits)",
            ),
            Self::NeedlessEscape => f.write_str(
                "the label writes a printable character as \\xHH; write the character itself",
            ),
            Self::NotPrintable => f.write_str(
                "a new key's label must be printable UTF-8 text, without control characters",
            ),
        }
    }
}

/// A refused uid or label: names the input (quoted, at most 160 characters),
/// what was wrong and the accepted form. Its message is bounded in length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subject} \"{shown}\": {fault}; expected {expected}")]
pub struct UidError {
    subject: &'static str,
    shown: String,
    expected: &'static str,
    /// What was wrong.
    pub fault: UidFault,
}

impl UidError {
    fn uid(input: &str, fault: UidFault) -> Self {
        Self {
            subject: "uid",
            shown: printable(input),
            expected: UID_FORM,
            fault,
        }
    }

    fn label(input: &str, fault: UidFault) -> Self {
        Self {
            subject: "label",
            shown: printable(input),
            expected: LABEL_FORM,
            fault,
        }
    }
}

impl From<UidError> for crate::ErrorBody {
    /// A `bad_request` carrying the error's sentence.
    fn from(e: UidError) -> Self {
        crate::ErrorBody::bad_request(e.to_string())
    }
}

/// At most [`SHOWN_MAX`] characters of `text`, with each character that
/// [`needs_escape`] shown as `\u{..}`: safe to quote in a message, a log
/// line or on a terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(SHOWN_MAX) {
        if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// True for the characters a label's text form writes as `\xHH` bytes:
/// control characters (C0, DEL, C1) and every character that can hide,
/// reorder or break text on a terminal or in a log: the Unicode general
/// categories Format (Cf: zero-width and bidirectional marks, soft hyphen,
/// tags, interlinear annotations, ...), Line and Paragraph Separator (Zl,
/// Zp, U+2028 and U+2029), and the Default_Ignorable_Code_Point property
/// (Hangul fillers, ...) except the variation selectors (U+FE00-U+FE0F,
/// U+E0100-U+E01EF), which only choose a glyph for the character before
/// them (the U+FE0F of an emoji such as "\u{2764}\u{fe0f}"). Unicode data
/// from `icu_properties` (Unicode Standard Annex #44).
pub fn needs_escape(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    if matches!(c, '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}') {
        return false;
    }
    c.is_control()
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || matches!(
            CodePointMapData::<GeneralCategory>::new().get(c),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// The text form of `bytes` (any `CKA_LABEL`): see the module doc.
pub fn escape_label(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let (good, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `good` is valid UTF-8 by construction.
                (std::str::from_utf8(good).unwrap_or_default(), bad)
            }
        };
        for c in good.chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if needs_escape(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        if let Some((b, tail)) = bad.split_first() {
            out.push_str(&format!("\\x{b:02x}"));
            rest = tail;
        } else {
            rest = &[];
        }
    }
    out
}

/// True when a public key object belongs to the key pair of a private key
/// object (PKCS#11 v2.40 section 4.8: the two halves of a pair share a
/// `CKA_ID`), given each object's `CKA_LABEL` and `CKA_ID`:
/// - both carry the same non-empty `CKA_ID`, and the public key is labelled
///   like the private key `L` (sc-hsm-embedded on a SmartCard-HSM gives a
///   generated public key the private key's label and ID, other tools do
///   the same) or `L_pk`;
/// - or the pair hsmd creates on other tokens: private `CKA_LABEL` =
///   `CKA_ID` = `L`, public `CKA_LABEL` = `CKA_ID` = `L_pk`.
pub fn is_key_pair(
    private_label: &[u8],
    private_id: &[u8],
    public_label: &[u8],
    public_id: &[u8],
) -> bool {
    let suffixed = public_label.strip_suffix(PUBLIC_SUFFIX.as_bytes()) == Some(private_label);
    let same_id = !private_id.is_empty() && private_id == public_id;
    (same_id && (public_label == private_label || suffixed))
        || (suffixed && private_id == private_label && public_id == public_label)
}

/// [`is_key_pair`] on two key infos as hsmd describes them: `public` is the
/// public key of the pair whose private key is `private`. The public key's
/// `label` is its name (`L_pk`), its `CKA_ID` is compared as hex.
pub fn infos_pair(private: &crate::KeyInfo, public: &crate::KeyInfo) -> bool {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (Ok(pl), Ok(ql)) = (Label::parse(&private.label), Label::parse(&public.label)) else {
        return false;
    };
    private.slot == public.slot
        && ql.pair_private().as_ref() == Some(&pl)
        && ((!private.id.is_empty() && private.id == public.id)
            || (private.id == hex(pl.as_bytes()) && public.id == hex(ql.as_bytes())))
}

/// A key's `CKA_LABEL`: its bytes and its one text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label {
    bytes: Vec<u8>,
    text: String,
}

impl Label {
    /// Parses a label's text form (module doc): 1 to [`MAX_LABEL_LEN`] bytes
    /// once decoded, in its one spelling.
    ///
    /// Errors: a [`UidError`] about the label naming the fault.
    pub fn parse(text: &str) -> Result<Self, UidError> {
        Self::decode(text).map_err(|f| UidError::label(text, f))
    }

    /// A label from a token's `CKA_LABEL` bytes, of any length (for listings).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            text: escape_label(bytes),
            bytes: bytes.to_vec(),
        }
    }

    fn decode(text: &str) -> Result<Self, UidFault> {
        if text.is_empty() {
            return Err(UidFault::EmptyLabel);
        }
        let mut bytes = Vec::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                if needs_escape(c) {
                    return Err(UidFault::RawControl(c));
                }
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next() {
                Some('\\') => bytes.push(b'\\'),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    let valid = hex.len() == 2 && hex.chars().all(|h| h.is_ascii_hexdigit());
                    let b = u8::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| valid && hex == hex.to_ascii_lowercase())
                        .ok_or(UidFault::BadEscape)?;
                    bytes.push(b);
                }
                _ => return Err(UidFault::BadEscape),
            }
        }
        if bytes.len() > MAX_LABEL_LEN {
            return Err(UidFault::TooLong(bytes.len()));
        }
        let label = Self::from_bytes(&bytes);
        if label.text != text {
            // Decoded fine but spelled another way (e.g. `\x41` for `A`).
            return Err(UidFault::NeedlessEscape);
        }
        Ok(label)
    }

    /// The `CKA_LABEL` bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the label is UTF-8 text without control or formatting
    /// characters (backslashes allowed): what hsmd gives new keys.
    pub fn is_printable(&self) -> bool {
        std::str::from_utf8(&self.bytes).is_ok_and(|s| !s.chars().any(needs_escape))
    }

    /// Refuses a label that is not [`Label::is_printable`].
    ///
    /// Errors: [`UidFault::NotPrintable`].
    pub fn require_printable(self) -> Result<Self, UidError> {
        if self.is_printable() {
            Ok(self)
        } else {
            Err(UidError::label(&self.text, UidFault::NotPrintable))
        }
    }

    /// The name of the public key of the pair whose private key is this
    /// label: the label + `_pk`.
    ///
    /// Errors: [`UidFault::TooLong`] when that passes [`MAX_LABEL_LEN`].
    pub fn public_key(&self) -> Result<Self, UidError> {
        let mut bytes = self.bytes.clone();
        bytes.extend_from_slice(PUBLIC_SUFFIX.as_bytes());
        if bytes.len() > MAX_LABEL_LEN {
            let text = format!("{}{PUBLIC_SUFFIX}", self.text);
            return Err(UidError::label(&text, UidFault::TooLong(bytes.len())));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// The private key's label when this label names the public key of a
    /// pair (`L_pk` gives `L`, with `L` not empty); else None.
    pub fn pair_private(&self) -> Option<Self> {
        self.bytes
            .strip_suffix(PUBLIC_SUFFIX.as_bytes())
            .filter(|l| !l.is_empty())
            .map(Self::from_bytes)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A parsed uid: slot and label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyUid {
    /// PKCS#11 slot ID.
    pub slot: u64,
    /// `CKA_LABEL`.
    pub label: Label,
}

impl KeyUid {
    /// Parses `hsm::<slot>::<label>` in its one spelling (module doc). The
    /// label is everything after the second `::` and may itself hold `::`.
    ///
    /// Errors: a [`UidError`] naming the uid, the fault and the accepted form.
    pub fn parse(uid: &str) -> Result<Self, UidError> {
        let bad = |f| UidError::uid(uid, f);
        let rest = uid
            .strip_prefix(UID_PREFIX)
            .ok_or_else(|| bad(UidFault::NoPrefix))?;
        let (slot, label) = rest
            .split_once("::")
            .ok_or_else(|| bad(UidFault::NoSeparator))?;
        let canonical = !slot.is_empty()
            && slot.bytes().all(|b| b.is_ascii_digit())
            && (slot == "0" || !slot.starts_with('0'));
        let slot = slot
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad(UidFault::BadSlot))?;
        let label = Label::decode(label).map_err(bad)?;
        Ok(Self { slot, label })
    }

    /// The uid of `label` in `slot`.
    pub fn new(slot: u64, label: Label) -> Self {
        Self { slot, label }
    }

    /// The uid of the public key of the pair whose private key is this uid
    /// (`hsm::S::L` gives `hsm::S::L_pk`).
    ///
    /// Errors: as [`Label::public_key`].
    pub fn public_key(&self) -> Result<Self, UidError> {
        Ok(Self {
            slot: self.slot,
            label: self.label.public_key()?,
        })
    }
}

impl fmt::Display for KeyUid {
    /// `hsm::<slot>::<label text>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{UID_PREFIX}{}::{}", self.slot, self.label)
    }
}

impl std::str::FromStr for KeyUid {
    type Err = UidError;
    fn from_str(s: &str) -> Result<Self, UidError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_reordering_characters_are_escaped() {
        for c in [
            '\u{0}',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{ad}',
            '\u{61c}',
            '\u{115f}',
            '\u{180e}',
            '\u{200b}',
            '\u{200e}',
            '\u{2028}',
            '\u{2029}',
            '\u{202e}',
            '\u{2066}',
            '\u{206a}',
            '\u{206f}',
            '\u{3164}',
            '\u{feff}',
            '\u{fff9}',
            '\u{fffb}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{e007f}',
        ] {
            assert!(needs_escape(c), "U+{:04X}", c as u32);
        }
        for c in [
            'a',
            '~',
            ' ',
            '\u{e9}',
            '\u{20ac}',
            '\u{65e5}',
            '\u{1f512}',
            '\u{fe0f}',
            '\u{e0100}',
        ] {
            assert!(!needs_escape(c), "U+{:04X}", c as u32);
        }
        assert_eq!(escape_label("a\u{2028}b".as_bytes()), "a\\xe2\\x80\\xa8b");
    }

    fn fault(uid: &str) -> UidFault {
        KeyUid::parse(uid).expect_err(uid).fault
    }

    #[test]
    fn parses_the_one_spelling() {
        let u = KeyUid::parse("hsm::4::a::b").unwrap();
        assert_eq!((u.slot, u.label.as_bytes()), (4, &b"a::b"[..]));
        assert_eq!(u.to_string(), "hsm::4::a::b");
        let u = KeyUid::parse("hsm::1365358982::aes1").unwrap();
        assert_eq!(u.slot, 1365358982);
        assert_eq!(KeyUid::parse("hsm::0::k").unwrap().slot, 0);
    }

    #[test]
    fn refuses_other_spellings_of_the_slot() {
        for uid in [
            "hsm::+1::k",
            "hsm::01::k",
            "hsm::00::k",
            "hsm:: 1::k",
            "hsm::1 ::k",
            "hsm::::k",
            "hsm::x::k",
            "hsm::-1::k",
            "hsm::18446744073709551616::k",
        ] {
            assert_eq!(fault(uid), UidFault::BadSlot, "{uid}");
        }
        assert_eq!(fault("kms::0::k"), UidFault::NoPrefix);
        assert_eq!(fault(""), UidFault::NoPrefix);
        assert_eq!(fault("hsm::0"), UidFault::NoSeparator);
        assert_eq!(fault("hsm::0::"), UidFault::EmptyLabel);
    }

    #[test]
    fn label_limits() {
        let max = format!("hsm::0::{}", "x".repeat(MAX_LABEL_LEN));
        assert!(KeyUid::parse(&max).is_ok());
        let long = format!("hsm::0::{}", "x".repeat(MAX_LABEL_LEN + 1));
        assert_eq!(fault(&long), UidFault::TooLong(MAX_LABEL_LEN + 1));
        // 43 three-byte characters are 129 bytes.
        let wide = format!("hsm::0::{}", "\u{20ac}".repeat(43));
        assert_eq!(fault(&wide), UidFault::TooLong(129));
        let e = KeyUid::parse(&long).unwrap_err().to_string();
        assert!(e.contains("at most 128"), "{e}");
        assert!(e.contains("hsm::<slot>::<label>"), "{e}");
    }

    #[test]
    fn escapes_round_trip() {
        let raw = b"a\x1b[2J\\b\xff\xc2\x85\xe2\x80\xaez\xc3\xa9";
        let l = Label::from_bytes(raw);
        assert_eq!(
            l.as_str(),
            "a\\x1b[2J\\\\b\\xff\\xc2\\x85\\xe2\\x80\\xaez\u{e9}"
        );
        assert!(!l.as_str().chars().any(needs_escape));
        let back = KeyUid::parse(&format!("hsm::3::{l}")).unwrap();
        assert_eq!(back.label.as_bytes(), raw);
        assert!(!back.label.is_printable());
        assert!(Label::parse("a\\\\b").unwrap().is_printable());
    }

    #[test]
    fn refuses_raw_and_other_escapes() {
        assert_eq!(fault("hsm::0::a\nb"), UidFault::RawControl('\n'));
        assert_eq!(
            fault("hsm::0::a\u{202e}b"),
            UidFault::RawControl('\u{202e}')
        );
        for bad in ["a\\b", "a\\", "a\\x1", "a\\xzz", "a\\x1B"] {
            assert_eq!(
                fault(&format!("hsm::0::{bad}")),
                UidFault::BadEscape,
                "{bad}"
            );
        }
        assert_eq!(fault("hsm::0::\\x41"), UidFault::NeedlessEscape);
        let e = Label::parse("\\x0a")
            .unwrap()
            .require_printable()
            .unwrap_err();
        assert_eq!(e.fault, UidFault::NotPrintable);
    }

    #[test]
    fn public_key_names() {
        let u = KeyUid::parse("hsm::2::r1").unwrap();
        let pk = u.public_key().unwrap();
        assert_eq!(pk.to_string(), "hsm::2::r1_pk");
        assert_eq!(pk.label.pair_private(), Some(u.label.clone()));
        assert_eq!(Label::parse("_pk").unwrap().pair_private(), None);
        assert_eq!(u.label.pair_private(), None);
        let full = Label::parse(&"x".repeat(MAX_LABEL_LEN - 2)).unwrap();
        assert_eq!(full.public_key().unwrap_err().fault, UidFault::TooLong(129));
    }

    #[test]
    fn key_pairs() {
        // SmartCard-HSM: one label, one CKA_ID.
        assert!(is_key_pair(b"t", b"\x01", b"t", b"\x01"));
        assert!(!is_key_pair(b"t", b"\x01", b"t", b"\x02"));
        assert!(!is_key_pair(b"t", b"", b"t", b""));
        // hsmd's templates elsewhere.
        assert!(is_key_pair(b"r", b"r", b"r_pk", b"r_pk"));
        assert!(is_key_pair(b"r", b"\x07", b"r_pk", b"\x07"));
        assert!(!is_key_pair(b"r", b"r", b"r_pk", b"other"));
        assert!(!is_key_pair(b"r", b"\x07", b"s", b"\x07"));
    }

    #[test]
    fn errors_are_bounded_and_quote_no_raw_control() {
        let hostile = format!("kms::{}\u{1b}[2J", "y".repeat(10_000));
        let e = KeyUid::parse(&hostile).unwrap_err().to_string();
        assert!(e.len() < 700, "{}", e.len());
        assert!(!e.chars().any(char::is_control), "{e}");
        let e = KeyUid::parse("hsm::0::\u{1b}[2J").unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e}");
    }
}
