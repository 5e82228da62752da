//! The raw database key.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The 32-byte key SQLCipher encrypts the database with. Derived by the node from the
/// organizer's passphrase through the crypto layer; zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DbKey([u8; 32]);

impl DbKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DbKey {
        DbKey(bytes)
    }

    /// The `PRAGMA key` argument for a raw key: `x'<64 hex digits>'` (SQLCipher then
    /// skips its own key derivation; ours is Argon2id, upstream).
    pub(crate) fn pragma_value(&self) -> zeroize::Zeroizing<String> {
        let mut s = zeroize::Zeroizing::new(String::with_capacity(67));
        s.push_str("x'");
        for b in &self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
        }
        s.push('\'');
        s
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(<redacted>)")
    }
}
