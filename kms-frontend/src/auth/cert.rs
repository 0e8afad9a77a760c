//! The KMS user named by a TLS client certificate.

use super::AuthError;
use x509_parser::extensions::GeneralName;

/// The user of the DER client certificate `der`: the first non-empty subject
/// common name (CN, RFC 5280 section 4.1.2.6), else the first e-mail subject
/// alternative name (rfc822Name, RFC 5280 section 4.2.1.6).
///
/// The certificate is expected to be already verified by the TLS layer; this
/// only reads it.
///
/// Errors: [`AuthError::Invalid`] when the certificate cannot be parsed, or
/// names the subject when it has neither a CN nor an e-mail SAN.
pub fn user_from_certificate(der: &[u8]) -> Result<String, AuthError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        AuthError::Invalid(format!(
            "the client certificate is not a valid X.509 certificate: {e}"
        ))
    })?;
    let common_name = certificate
        .subject()
        .iter_common_name()
        .filter_map(|attribute| attribute.as_str().ok())
        .map(str::trim)
        .find(|name| !name.is_empty());
    if let Some(name) = common_name {
        return Ok(name.to_owned());
    }
    let san = certificate.subject_alternative_name().map_err(|e| {
        AuthError::Invalid(format!(
            "the client certificate `{}` has an invalid subject alternative name extension: {e}",
            certificate.subject()
        ))
    })?;
    let email = san
        .into_iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .find_map(|name| match name {
            GeneralName::RFC822Name(email) if !email.trim().is_empty() => Some(email.trim()),
            _ => None,
        });
    email.map(str::to_owned).ok_or_else(|| {
        AuthError::Invalid(format!(
            "the client certificate `{}` names no user: it has neither a subject common name (CN) nor an e-mail subject alternative name (rfc822Name, RFC 5280 section 4.2.1.6)",
            certificate.subject()
        ))
    })
}
