//! RFC 6962 / RFC 9162 Merkle trees over SHA-256: leaf and node hashes, tree heads, inclusion
//! and consistency proofs and their verification, and the compact range that lets a log's
//! sequencer keep its root up to date in O(log n) per appended leaf.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

fn split(n: usize) -> usize {
    // The largest power of two smaller than n (n >= 2).
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 PATH). `None` if out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(leaves, index, &mut out);
    Some(out)
}

fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(&leaves[..k], m, out);
        out.push(root(&leaves[k..]));
    } else {
        path(&leaves[k..], m - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// The consistency proof between the first `old_size` leaves and all of `leaves` (RFC 6962
/// PROOF). `None` unless `0 < old_size <= leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    subproof(leaves, old_size, true, &mut out);
    Some(out)
}

fn subproof(leaves: &[Hash], m: usize, complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(&leaves[..k], m, complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(&leaves[k..], m - k, false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

/// A run of leaves `[lo, hi)`; proofs are lists of the tree hashes of such runs.
pub type Range = (u64, u64);

fn split64(n: u64) -> u64 {
    // The largest power of two smaller than n (n >= 2).
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The runs whose hashes make the audit path of leaf `index` in a tree of `size` leaves
/// (RFC 6962 PATH), in proof order. Empty when `index >= size` or the tree has one leaf.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<Range> {
    let mut out = Vec::new();
    if index < size {
        path_ranges(0, size, index, &mut out);
    }
    out
}

fn path_ranges(lo: u64, hi: u64, m: u64, out: &mut Vec<Range>) {
    let n = hi - lo;
    if n <= 1 {
        return;
    }
    let k = split64(n);
    if m < k {
        path_ranges(lo, lo + k, m, out);
        out.push((lo + k, hi));
    } else {
        path_ranges(lo + k, hi, m - k, out);
        out.push((lo, lo + k));
    }
}

/// The runs whose hashes make the consistency proof from `old_size` to `size` leaves (RFC 6962
/// PROOF), in proof order. Empty unless `0 < old_size < size`.
pub fn consistency_ranges(old_size: u64, size: u64) -> Vec<Range> {
    let mut out = Vec::new();
    if old_size > 0 && old_size < size {
        subproof_ranges(0, size, old_size, true, &mut out);
    }
    out
}

fn subproof_ranges(lo: u64, hi: u64, m: u64, complete: bool, out: &mut Vec<Range>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split64(n);
    if m <= k {
        subproof_ranges(lo, lo + k, m, complete, out);
        out.push((lo + k, hi));
    } else {
        subproof_ranges(lo + k, hi, m - k, false, out);
        out.push((lo, lo + k));
    }
}

/// The perfect subtrees `(level, index)` whose hashes give the tree hash of the run `[lo, hi)`
/// as RFC 6962 splits it, left to right. A run taken from [`inclusion_ranges`] or
/// [`consistency_ranges`] (or the whole tree) decomposes into at most 64 of them.
pub fn perfect_cover(lo: u64, hi: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    cover(lo, hi, &mut out);
    out
}

fn cover(lo: u64, hi: u64, out: &mut Vec<(u32, u64)>) {
    let n = hi.saturating_sub(lo);
    if n == 0 {
        return;
    }
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros();
        out.push((level, lo >> level));
        return;
    }
    let k = split64(n);
    cover(lo, lo + k, out);
    cover(lo + k, hi, out);
}

/// The tree hash of the run `[lo, hi)` from the hashes of its perfect subtrees (as listed by
/// [`perfect_cover`]); `None` if one is missing.
pub fn range_hash(lo: u64, hi: u64, node: &impl Fn(u32, u64) -> Option<Hash>) -> Option<Hash> {
    let n = hi.checked_sub(lo)?;
    if n == 0 {
        return Some(empty_root());
    }
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return node(level, lo >> level);
    }
    let k = split64(n);
    Some(node_hash(
        &range_hash(lo, lo + k, node)?,
        &range_hash(lo + k, hi, node)?,
    ))
}

/// The hash of the perfect subtree `(level, index)` from the `2^(level - base)` nodes of the
/// lower level `base` that it covers, in order (`below.len()` must be exactly that).
pub fn fold_perfect(below: &[Hash]) -> Option<Hash> {
    if below.is_empty() || !below.len().is_power_of_two() {
        return None;
    }
    let mut layer = below.to_vec();
    while layer.len() > 1 {
        layer = layer
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
    }
    layer.pop()
}

/// The roots of the perfect subtrees covering a tree's leaves, largest first: enough to append
/// leaves and compute the root without the leaves themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<Hash>,
}

impl CompactRange {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn append(&mut self, leaf: Hash) {
        self.append_visit(leaf, |_, _, _| {});
    }

    /// Appends one leaf hash and calls `completed(level, index, hash)` for every interior node
    /// this append completes (level 1 covers two leaves; `index` counts nodes of that level
    /// from the left). A store keeps the nodes it wants for proofs from these calls.
    pub fn append_visit(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        let mut node = leaf;
        let mut s = self.size;
        let mut level = 0u32;
        while s & 1 == 1 {
            if let Some(left) = self.nodes.pop() {
                node = node_hash(&left, &node);
            }
            s >>= 1;
            level += 1;
            completed(level, s, &node);
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The tree head of everything appended.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(mut r) = it.next().copied() else {
            return empty_root();
        };
        for left in it {
            r = node_hash(left, &r);
        }
        r
    }

    /// `size (u64 BE) ‖ nodes`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.nodes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for n in &self.nodes {
            out.extend_from_slice(n);
        }
        out
    }

    /// Decodes [`CompactRange::encode`]; `None` if the node count does not fit the size.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (size, rest) = bytes.split_at_checked(8)?;
        let size = u64::from_be_bytes(size.try_into().ok()?);
        if rest.len() % 32 != 0 || rest.len() / 32 != size.count_ones() as usize {
            return None;
        }
        let nodes = rest
            .chunks_exact(32)
            .map(|c| c.try_into().ok())
            .collect::<Option<Vec<Hash>>>()?;
        Some(Self { size, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hex, unhex};
    use proptest::prelude::*;

    /// The leaves of the RFC 6962 reference test tree used by Certificate Transparency.
    fn reference_leaves() -> Vec<Hash> {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        data.iter().map(|d| leaf_hash(d)).collect()
    }

    fn h(s: &str) -> Hash {
        unhex(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn reference_roots() {
        let leaves = reference_leaves();
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut compact = CompactRange::default();
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(hex(&root(&leaves[..=i])), *e, "size {}", i + 1);
            compact.append(leaves[i]);
            assert_eq!(hex(&compact.root()), *e, "compact, size {}", i + 1);
        }
    }

    #[test]
    fn reference_inclusion_proofs() {
        let leaves = reference_leaves();
        let proof = inclusion_proof(&leaves, 0).unwrap();
        assert_eq!(
            proof,
            [
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        let proof = inclusion_proof(&leaves, 5).unwrap();
        assert_eq!(
            proof,
            [
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        assert!(inclusion_proof(&leaves, 8).is_none());
    }

    #[test]
    fn reference_consistency_proofs() {
        let leaves = reference_leaves();
        assert_eq!(
            consistency_proof(&leaves, 1).unwrap(),
            [
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        assert_eq!(
            consistency_proof(&leaves[..6], 4).unwrap(),
            [h(
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
            )]
        );
        assert_eq!(
            consistency_proof(&leaves, 6).unwrap(),
            [
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        assert_eq!(
            consistency_proof(&leaves, 2).unwrap(),
            [
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn inclusion_proofs_verify_and_flipped_bits_fail(n in 1usize..300, seed in any::<usize>(), bit in 0usize..256) {
            let l = leaves(n);
            let r = root(&l);
            let i = seed % n;
            let proof = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &proof, &r));
            let mut bad_root = r;
            bad_root[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verify_inclusion(&l[i], i as u64, n as u64, &proof, &bad_root));
            let mut bad_leaf = l[i];
            bad_leaf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verify_inclusion(&bad_leaf, i as u64, n as u64, &proof, &r));
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = seed % bad.len();
                bad[j][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(!verify_inclusion(&l[i], i as u64, n as u64, &bad, &r));
                prop_assert!(!verify_inclusion(&l[i], i as u64, n as u64, &proof[..proof.len() - 1], &r));
            }
            if n > 1 {
                prop_assert!(!verify_inclusion(&l[i], ((i + 1) % n) as u64, n as u64, &proof, &r) || l[i] == l[(i + 1) % n]);
            }
        }

        #[test]
        fn consistency_proofs_verify_and_flipped_bits_fail(n in 1usize..300, seed in any::<usize>(), bit in 0usize..256) {
            let l = leaves(n);
            let m = 1 + seed % n;
            let (old, new) = (root(&l[..m]), root(&l));
            let proof = consistency_proof(&l, m).unwrap();
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &proof));
            let mut bad_old = old;
            bad_old[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verify_consistency(m as u64, n as u64, &bad_old, &new, &proof));
            let mut bad_new = new;
            bad_new[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verify_consistency(m as u64, n as u64, &old, &bad_new, &proof));
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = seed % bad.len();
                bad[j][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(!verify_consistency(m as u64, n as u64, &old, &new, &bad));
            }
        }

        #[test]
        fn compact_range_matches_and_round_trips(n in 0usize..600) {
            let l = leaves(n);
            let mut c = CompactRange::default();
            for leaf in &l {
                c.append(*leaf);
            }
            prop_assert_eq!(c.root(), root(&l));
            prop_assert_eq!(CompactRange::decode(&c.encode()), Some(c.clone()));
        }

        /// Stored compact ranges are read back from the database: random or damaged bytes
        /// decode to nothing or to a range whose shape fits its size, never a panic.
        #[test]
        fn compact_range_decoding_never_panics(
            n in 0usize..300,
            pos in any::<usize>(),
            byte in any::<u8>(),
            junk in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut c = CompactRange::default();
            for leaf in leaves(n) {
                c.append(leaf);
            }
            let mut bytes = c.encode();
            if !bytes.is_empty() {
                let at = pos % bytes.len();
                bytes[at] = byte;
            }
            for b in [bytes, junk] {
                if let Some(d) = CompactRange::decode(&b) {
                    let _ = d.root();
                    prop_assert_eq!(d.encode(), b);
                }
            }
        }
    }

    fn leaves_of(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    /// Every completed node reported by `append_visit`, keyed by (level, index), with leaves at level 0.
    fn all_nodes(leaves: &[Hash]) -> std::collections::HashMap<(u32, u64), Hash> {
        let mut nodes = std::collections::HashMap::new();
        let mut c = CompactRange::default();
        for (i, l) in leaves.iter().enumerate() {
            nodes.insert((0, i as u64), *l);
            c.append_visit(*l, |level, index, h| {
                assert!(
                    nodes.insert((level, index), *h).is_none(),
                    "node reported twice"
                );
            });
        }
        nodes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn proofs_from_stored_nodes_equal_the_reference(n in 1usize..300, a in 0usize..300, b in 0usize..300) {
            let leaves = leaves_of(n);
            let nodes = all_nodes(&leaves);
            let get = |level: u32, index: u64| nodes.get(&(level, index)).copied();
            // Every perfect subtree that exists was reported, with the right hash.
            for (&(level, index), h) in &nodes {
                let lo = (index << level) as usize;
                prop_assert_eq!(*h, root(&leaves[lo..lo + (1usize << level)]));
            }
            prop_assert_eq!(range_hash(0, n as u64, &get), Some(root(&leaves)));
            let index = a % n;
            let from_ranges: Option<Vec<Hash>> = inclusion_ranges(index as u64, n as u64)
                .into_iter()
                .map(|(lo, hi)| range_hash(lo, hi, &get))
                .collect();
            prop_assert_eq!(from_ranges, inclusion_proof(&leaves, index));
            let old = 1 + b % n;
            let from_ranges: Option<Vec<Hash>> = consistency_ranges(old as u64, n as u64)
                .into_iter()
                .map(|(lo, hi)| range_hash(lo, hi, &get))
                .collect();
            prop_assert_eq!(from_ranges, consistency_proof(&leaves, old));
            for (lo, hi) in inclusion_ranges(index as u64, n as u64)
                .into_iter()
                .chain(consistency_ranges(old as u64, n as u64))
            {
                let cover = perfect_cover(lo, hi);
                prop_assert!(cover.len() <= 64);
                for (level, index) in cover {
                    prop_assert!(nodes.contains_key(&(level, index)));
                }
            }
        }
    }

    #[test]
    fn folding_a_layer_gives_the_perfect_subtree() {
        let leaves = leaves_of(16);
        assert_eq!(fold_perfect(&leaves[..8]), Some(root(&leaves[..8])));
        assert_eq!(fold_perfect(&leaves[..1]), Some(leaves[0]));
        assert_eq!(fold_perfect(&leaves[..3]), None);
        assert_eq!(fold_perfect(&[]), None);
    }
}
