//! The byte layout of a record's encrypted fields (see `docs/storage.md`):
//! `format (u8 = 1) | count (u16 BE) | count × [name_len (u8) | name | env_len (u32 BE) | envelope]`.
//! Field names are schema identifiers (never personal data); envelopes are AES-GCM sealed.

use crate::error::{Error, Result};

const FORMAT: u8 = 1;

/// Encodes `(field name, envelope)` pairs.
pub fn encode(fields: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size = 3 + fields
        .iter()
        .map(|(n, e)| 5 + n.len() + e.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(FORMAT);
    out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (name, env) in fields {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(env.len() as u32).to_be_bytes());
        out.extend_from_slice(env);
    }
    out
}

/// Decodes what [`encode`] wrote; any malformation is an integrity error.
pub fn decode(mut b: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if b.len() < n {
            return Err(Error::integrity());
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Ok(head)
    }
    if take(&mut b, 1)? != [FORMAT] {
        return Err(Error::integrity());
    }
    let count = u16::from_be_bytes([take(&mut b, 1)?[0], take(&mut b, 1)?[0]]) as usize;
    let mut out = Vec::with_capacity(count.min(256));
    for _ in 0..count {
        let name_len = take(&mut b, 1)?[0] as usize;
        let name = std::str::from_utf8(take(&mut b, name_len)?).map_err(|_| Error::integrity())?;
        let len_bytes = take(&mut b, 4)?;
        let len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let env = take(&mut b, len)?;
        out.push((name.to_owned(), env.to_vec()));
    }
    if !b.is_empty() {
        return Err(Error::integrity());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let fields = vec![
            ("email".to_string(), vec![1, 2, 3]),
            ("n".to_string(), vec![]),
        ];
        let enc = encode(&fields);
        assert_eq!(decode(&enc).unwrap(), fields);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = enc.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
    }
}
