//! Writer and generator tests: byte-exact standard v2 output (spec §5 worked examples) and
//! round trips of small SWU updates built here.

use adudiffapi::format::writer::{item_of, write_delta_to_vec, DeltaBuilder};
use adudiffapi::format::{Recipe, RecipeKind};

const HELLO_DELTA_HEX: &[&str] = &[
    "50414d5a000000000000000200000000000000050000800c2cf24dba5fb0a30e",
    "26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824000000000000000c",
    "0000800ca948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299",
    "a192a447000000080000000000000009616c6c5f7a65726f7300000000000000",
    "05636861696e0000000000000005736c69636500000000000000156273706174",
    "63685f6465636f6d7072657373696f6e00000000000000107a6c69625f636f6d",
    "7072657373696f6e00000000000000127a6c69625f6465636f6d707265737369",
    "6f6e00000000000000107a7374645f636f6d7072657373696f6e000000000000",
    "00127a7374645f6465636f6d7072657373696f6e000000000000000100000000",
    "0000000100000000000000050000800c2cf24dba5fb0a30e26e83b2ac5b9e29e",
    "1b161e5c1fa7425e73043362938b982400000002000000000000000100000000",
    "000000000000000000000001000000000000000c0000800ca948904f2f0f479b",
    "8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a4470000000000000000",
    "000000000000000000000000",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hello_builder() -> DeltaBuilder {
    let source = item_of(b"hello world\n");
    let target = item_of(b"hello");
    DeltaBuilder {
        target: target.clone(),
        source: source.clone(),
        recipes: vec![Recipe {
            kind: RecipeKind::Slice,
            result: target,
            numbers: vec![0],
            items: vec![source],
        }],
        inline_assets: None,
        remainder: None,
    }
}

#[test]
fn writer_reproduces_the_428_byte_worked_example() {
    let expected = unhex(HELLO_DELTA_HEX);
    assert_eq!(expected.len(), 428);
    assert_eq!(write_delta_to_vec(&hello_builder()).unwrap(), expected);
}

#[test]
fn writer_reproduces_the_602_byte_remainder_variant() {
    let mut b = hello_builder();
    let remainder = b"ABCDEFGHIJABCDEFGHIJ".to_vec();
    b.remainder = Some(remainder.clone());
    let got = write_delta_to_vec(&b).unwrap();

    let base = unhex(HELLO_DELTA_HEX);
    let compressed = [
        0x73, 0x74, 0x72, 0x76, 0x71, 0x75, 0x73, 0xF7, 0xF0, 0xF4, 0x72, 0x84, 0xB3, 0x00,
    ];
    let item_bytes = |data: &[u8]| {
        let it = item_of(data);
        let mut v = (data.len() as u64).to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0x80, 0x0C]);
        v.extend_from_slice(&it.sha256.unwrap());
        v
    };
    let mut expected = base[..0x114].to_vec();
    expected.extend_from_slice(&2u64.to_be_bytes());
    expected.extend_from_slice(&base[0x11C..0x198]);
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.extend(item_bytes(&remainder));
    expected.extend_from_slice(&5u32.to_be_bytes());
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.extend_from_slice(&0u64.to_be_bytes());
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.extend(item_bytes(&compressed));
    expected.extend_from_slice(&0u64.to_be_bytes()); // inline assets
    expected.extend(item_bytes(&compressed));
    expected.extend_from_slice(&compressed);
    expected.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(expected.len(), 602);
    assert_eq!(hex(&item_of(&remainder).sha256.unwrap())[..8], *"17149463");
    assert_eq!(hex(&item_of(&compressed).sha256.unwrap())[..8], *"ad18f145");
    assert_eq!(got, expected);
}

#[test]
fn empty_remainder_is_the_two_byte_deflate_without_recipe() {
    let mut b = hello_builder();
    b.remainder = Some(Vec::new());
    let got = write_delta_to_vec(&b).unwrap();
    // Same recipe set as the worked example; the remainder section holds `03 00`.
    let base = unhex(HELLO_DELTA_HEX);
    assert_eq!(&got[..0x1A0], &base[..0x1A0]);
    assert_eq!(&got[0x1A0..0x1A8], &2u64.to_be_bytes());
    assert_eq!(&got[got.len() - 6..], &[0x03, 0x00, 0, 0, 0, 0]);
    assert_eq!(got.len(), 428 + 36 + 2);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Minimal standard-v2 reader for the rewrite test (the crate's parser lives elsewhere): returns
/// a builder holding the recipes, the inline assets and the *inflated* remainder, so that the
/// writer has to reproduce the remainder compression and the ordering by itself.
fn read_v2(bytes: &[u8]) -> DeltaBuilder {
    use adudiffapi::format::reader::{Cursor, Endian};
    use adudiffapi::format::Item;
    use adudiffapi::io::SharedBytes;
    let mut c = Cursor::new(SharedBytes::from_vec(bytes.to_vec()), Endian::Big);
    let item = |c: &mut Cursor| -> Item {
        let mut it = Item {
            length: c.u64().unwrap(),
            ..Item::default()
        };
        if it.length != 0 {
            c.hash_into(&mut it).unwrap();
        }
        it
    };
    assert_eq!(c.bytes(4).unwrap(), b"PAMZ");
    assert_eq!(c.u64().unwrap(), 2);
    let target = item(&mut c);
    let source = item(&mut c);
    let names = c.u32().unwrap();
    for _ in 0..names {
        let n = c.u64().unwrap();
        c.bytes(n).unwrap();
    }
    let mut recipes = Vec::new();
    for _ in 0..c.u64().unwrap() {
        let count = c.u64().unwrap();
        let result = item(&mut c);
        for _ in 0..count {
            let kind = RecipeKind::from_id(c.u32().unwrap()).unwrap();
            let numbers = (0..c.u64().unwrap()).map(|_| c.u64().unwrap()).collect();
            let items = (0..c.u64().unwrap()).map(|_| item(&mut c)).collect();
            recipes.push(Recipe {
                kind,
                result: result.clone(),
                numbers,
                items,
            });
        }
    }
    let ia = item(&mut c);
    let inline_assets = (ia.length != 0).then(|| c.bytes(ia.length).unwrap().to_vec());
    let rc = item(&mut c);
    let remainder = (rc.length != 0).then(|| {
        let blob = c.bytes(rc.length).unwrap().to_vec();
        // Drop the recipe the writer adds by itself.
        recipes.retain(|r| !(r.items.len() == 1 && r.items[0] == rc));
        adudiffapi::generate::zlib::inflate_raw(&blob).unwrap()
    });
    assert_eq!(c.u32().unwrap(), 0);
    DeltaBuilder {
        target,
        source,
        recipes,
        inline_assets,
        remainder,
    }
}

#[test]
fn rewriting_microsoft_vectors_is_byte_identical() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut checked = 0;
    for name in [
        "slice_basic",
        "chain_of_slices",
        "all_zeros_in_chain",
        "all_zeros_whole_target",
        "remainder_slices",
        "inline_assets_slices",
        "bspatch_slice_dictionary",
        "zstd_no_dictionary",
        "zlib_decompression_gz",
        "swu_realistic_rootfs",
    ] {
        let original = std::fs::read(dir.join(name).join("delta")).unwrap();
        let mut builder = read_v2(&original);
        // Feed the recipes in reverse to prove the writer orders them itself.
        builder.recipes.reverse();
        let rewritten = write_delta_to_vec(&builder).unwrap();
        assert!(rewritten == original, "{name}: rewritten delta differs");
        checked += 1;
    }
    assert_eq!(checked, 10);
}
