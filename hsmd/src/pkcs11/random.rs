//! `random`: bytes from the token's generator (`C_GenerateRandom`, PKCS#11
//! v2.40 section 5.15).

use super::engine::on_session::OnSession;
use super::engine::{KeyObjects, Route, SlotOperation};
use super::error::OpError;
use super::slot::SlotContext;
use cryptoki::session::Session;
use hsmd_protocol::{ErrorBody, KeyUid, Random, RandomResult, MAX_RANDOM_LEN};

impl SlotOperation for Random {
    /// Errors: `bad_request` when `len` is not 1 to [`MAX_RANDOM_LEN`].
    fn route(&self) -> Result<Route, ErrorBody> {
        if self.len == 0 || self.len > MAX_RANDOM_LEN {
            return Err(ErrorBody::bad_request(format!(
                "len: random takes 1 to {MAX_RANDOM_LEN} bytes, got {}",
                self.len
            )));
        }
        Ok(Route::SlotOrFirst(self.slot))
    }
}

impl OnSession for Random {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Untouched;

    fn run(
        &self,
        s: &Session,
        _: &SlotContext,
        _: Option<&KeyUid>,
    ) -> Result<RandomResult, OpError> {
        Ok(RandomResult {
            bytes: s.generate_random_vec(self.len)?.into(),
        })
    }
}
