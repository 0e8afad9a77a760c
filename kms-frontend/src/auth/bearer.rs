//! The `Authorization: Bearer <token>` header (RFC 6750 section 2.1).

use super::AuthError;

/// The token of an `Authorization: Bearer <token>` header value (the scheme
/// is case-insensitive, RFC 7235 section 2.1).
///
/// Errors: [`AuthError::Invalid`] naming the scheme found (never the
/// credentials).
pub fn bearer_token(authorization: &str) -> Result<&str, AuthError> {
    let value = authorization.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("Bearer") {
        let named = if scheme.len() <= 20
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !token.is_empty()
        {
            format!(" (got the `{scheme}` scheme)")
        } else {
            String::new()
        };
        return Err(AuthError::Invalid(format!(
            "the Authorization header must be `Bearer <JWT>` (RFC 6750 section 2.1){named}"
        )));
    }
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::Invalid(
            "the Authorization header must be `Bearer <JWT>` (RFC 6750 section 2.1): one token after `Bearer `".into(),
        ));
    }
    Ok(token)
}
