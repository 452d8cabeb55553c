//! Resource bounds: hostile standard-v2 (and legacy-v0) deltas that claim huge lengths and
//! counts, nest deeply, form cycles or exponential DAGs, or carry compression bombs. Each one is
//! applied through the C functions in a child process (this test binary re-executed) under
//! `RLIMIT_AS` = [`AS_LIMIT`] and a wall-clock limit, and must end with its documented code
//! (or its correct target) quickly, without the process dying.
//!
//! Every named bound is also tested at its edge: at the limit passes, one past fails.
//!
//! Run `cargo test --test hostile -- --nocapture` to see the per-case table (code, time, peak
//! memory) that `docs/RELIABILITY.md` reports.

mod common;

use std::io::Write;
use std::time::Duration;

use adudiffapi::execute::MAX_VIEW_PIECES;
use adudiffapi::format::legacy::MAX_RECIPE_DEPTH;
use adudiffapi::format::standard::{MAX_NESTING_DEPTH, MAX_RECIPE_TYPE_NAMES};
use adudiffapi::plan::{MAX_PLAN_NODES, MAX_RESOLUTION_DEPTH};
use common::*;

/// Address-space limit of every child: the tightest round figure with which a legitimate apply
/// (the largest golden vector, `swu_realistic_rootfs`, and a 32 MiB zstd/zlib/bspatch output)
/// still passes, with headroom. Most of it is reservations, not memory: the apply thread's
/// 64 MiB stack, glibc's per-thread malloc arenas (64 MiB of address space each), the 1 MiB pipe
/// thread stacks and the test binary itself.
const AS_LIMIT: u64 = 448 << 20;

/// Wall-clock limit of every child (debug build, on a loaded 2-core machine).
const TIMEOUT: Duration = Duration::from_secs(60);

/// A failing hostile case must fail within this time (it typically takes milliseconds), plus one
/// second per 8 MiB of delta (parsing and resolving are linear in the delta's size).
const FAIL_FAST: Duration = Duration::from_secs(10);

#[test]
fn child_process_entry() {
    child_main();
}

/// What a case must yield.
enum Expect {
    /// Success, with exactly these target bytes.
    Target(Vec<u8>),
    /// This error code (first error), with this text fragment.
    Code(u32, &'static str),
    /// One of these error codes (where the limit bites depends on the machine: a budget
    /// check before the work, or a failed allocation inside a codec).
    AnyOf(&'static [u32]),
}

/// A fixed pseudo-random 64 KiB source.
fn source_bytes() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Address-space limit for the full-scale plan-node bound (its own cost is ~0.5 GiB, plus the
/// delta's 116 MiB private copy; below ~1.2 GiB the memory budget, not the node bound, ends
/// the one-past case with 20301, see `plan_nodes_under_tight_limits`).
const BIG_AS_LIMIT: u64 = 5 << 28;

/// Runs one case in a child limited to [`as_limit`] and checks it.
fn case(name: &str, delta: &[u8], expect: Expect) {
    case_with(name, delta, expect, as_limit());
}

/// The address-space limit: [`AS_LIMIT`], or `ADUDIFF_TEST_AS_MIB` MiB when set (0 = none).
fn as_limit() -> u64 {
    std::env::var("ADUDIFF_TEST_AS_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(AS_LIMIT, |mib| mib << 20)
}

/// Runs one case in a child limited to `limit` bytes of address space and checks it; prints a
/// table row.
fn case_with(name: &str, delta: &[u8], expect: Expect, limit: u64) {
    let work = tempfile::tempdir().unwrap();
    let (source, delta_path, target) = (
        work.path().join("source"),
        work.path().join("delta"),
        work.path().join("target"),
    );
    std::fs::write(&source, source_bytes()).unwrap();
    std::fs::write(&delta_path, delta).unwrap();
    let mut job = ChildApply::new(&source, &delta_path, &target);
    job.address_space = limit;
    job.timeout = TIMEOUT;
    let r = run_child(&job);
    println!(
        "HOSTILE | {name} | {} | {} ms | VmPeak {} MiB | RSS {} MiB | delta {} B",
        r.code.map_or("none".to_string(), |c| c.to_string()),
        r.elapsed.as_millis(),
        r.vm_peak_kib / 1024,
        r.rss_peak_kib / 1024,
        delta.len()
    );
    assert!(
        r.abnormal.is_none(),
        "{name}: child {} (stderr: {})",
        r.abnormal.as_deref().unwrap_or(""),
        r.stderr
    );
    let code = r.code.unwrap();
    match expect {
        Expect::Target(bytes) => {
            assert_eq!(code, 0, "{name}: expected success, got {code}: {}", r.text);
            assert!(
                std::fs::read(&target).unwrap() == bytes,
                "{name}: wrong target"
            );
        }
        Expect::Code(want, fragment) => {
            assert_eq!(
                code, want,
                "{name}: expected {want}, got {code}: {}",
                r.text
            );
            assert!(
                r.text.contains(fragment),
                "{name}: text {:?} lacks {fragment:?}",
                r.text
            );
            let allowed = FAIL_FAST + Duration::from_secs(delta.len() as u64 >> 23);
            assert!(r.elapsed < allowed, "{name}: took {:?}", r.elapsed);
            assert!(!target.exists(), "{name}: a failed apply left a target");
        }
        Expect::AnyOf(codes) => {
            assert!(codes.contains(&code), "{name}: got {code}: {}", r.text);
            assert!(!target.exists(), "{name}: a failed apply left a target");
        }
    }
    assert!(leftovers(work.path()).is_empty(), "{name}: temporary files");
}

/// A delta whose only content is `tail` after the type table.
fn after_table(target: It, tail: impl FnOnce(&mut W)) -> Vec<u8> {
    let mut w = W::default();
    w.header(2, &target, &empty()).type_table();
    tail(&mut w);
    w.0
}

// ---------------------------------------------------------------------------------------------
// Calibration: legitimate applies pass under the limit
// ---------------------------------------------------------------------------------------------

#[test]
fn legitimate_applies_pass_under_the_limit() {
    for vector in [
        "swu_realistic_rootfs",
        "zstd_patch_from_source",
        "bspatch_slice_dictionary",
        "nested_archive",
    ] {
        let dir = vectors_dir().join(vector);
        let work = tempfile::tempdir().unwrap();
        let target = work.path().join("target");
        let mut job = ChildApply::new(&dir.join("source"), &dir.join("delta"), &target);
        job.address_space = as_limit();
        job.timeout = TIMEOUT;
        let r = run_child(&job);
        println!(
            "HOSTILE | legit {vector} | {:?} | {} ms | VmPeak {} MiB | RSS {} MiB",
            r.code,
            r.elapsed.as_millis(),
            r.vm_peak_kib / 1024,
            r.rss_peak_kib / 1024
        );
        assert_eq!(r.code, Some(0), "{vector}: {r:?}");
        assert_eq!(
            std::fs::read(&target).unwrap(),
            std::fs::read(dir.join("target")).unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Huge counts and lengths
// ---------------------------------------------------------------------------------------------

#[test]
fn huge_counts_fail_with_short_read() {
    let t = fake(16, "t");
    case(
        "recipe_set_count_u64_max",
        &after_table(t, |w| {
            w.u64(u64::MAX);
        }),
        Expect::Code(20000, "Wanted to read"),
    );
    case(
        "recipe_count_u64_max",
        &after_table(t, |w| {
            w.u64(1).u64(u64::MAX).item(&t).recipe(&zeros());
        }),
        Expect::Code(20000, "Wanted to read"),
    );
    case(
        "number_count_u64_max",
        &after_table(t, |w| {
            w.u64(1).u64(1).item(&t).u32(ty::SLICE).u64(u64::MAX).u64(0);
        }),
        Expect::Code(20000, "Wanted to read"),
    );
    case(
        "item_count_u64_max",
        &after_table(t, |w| {
            w.u64(1).u64(1).item(&t).u32(ty::CHAIN).u64(0).u64(u64::MAX);
        }),
        Expect::Code(20000, "Wanted to read"),
    );
    case(
        "nested_count_u32_max",
        &after_table(t, |w| {
            w.u64(0).item(&empty()).item(&empty()).u32(u32::MAX);
        }),
        Expect::Code(20000, "Wanted to read"),
    );
    case(
        "type_name_length_u64_max",
        &{
            let mut w = W::default();
            w.header(2, &t, &empty()).u32(1).u64(u64::MAX).raw(b"chain");
            w.0
        },
        Expect::Code(20000, "Wanted to read"),
    );
}

#[test]
fn recipe_type_table_bound_at_its_edge() {
    let target = b"type table edge!".to_vec();
    let with_table = |count: u32| {
        let mut w = W::default();
        w.header(2, &item_of(&target), &empty()).u32(count);
        for _ in 0..count {
            w.u64(1).raw(b"x");
        }
        w.u64(0).blob(&target).blob(&[]).u32(0);
        w.0
    };
    case(
        "type_table_at_MAX_RECIPE_TYPE_NAMES",
        &with_table(MAX_RECIPE_TYPE_NAMES),
        Expect::Target(target.clone()),
    );
    case(
        "type_table_one_past",
        &with_table(MAX_RECIPE_TYPE_NAMES + 1),
        Expect::Code(30010, "Recipe type table"),
    );
    case(
        "type_table_u32_max",
        &{
            let mut w = W::default();
            w.header(2, &item_of(&target), &empty()).u32(u32::MAX);
            w.0
        },
        Expect::Code(30010, "Recipe type table"),
    );
}

#[test]
fn huge_blob_lengths_fail_with_past_end() {
    let t = fake(16, "t");
    for (name, len) in [
        ("inline_assets_2^60", 1u64 << 60),
        ("inline_assets_u64_max", u64::MAX),
    ] {
        case(
            name,
            &after_table(t, |w| {
                w.u64(0).item(&fake(len, "ia")).raw(&[7; 100]);
            }),
            Expect::Code(21200, "new_end"),
        );
    }
    case(
        "remainder_2^60",
        &after_table(t, |w| {
            w.u64(0)
                .item(&empty())
                .item(&fake(1 << 60, "rem"))
                .raw(&[7; 100]);
        }),
        Expect::Code(21200, "new_end"),
    );
    case(
        "nested_blob_2^60",
        &after_table(t, |w| {
            w.u64(0)
                .item(&empty())
                .item(&empty())
                .u32(1)
                .item(&fake(1 << 60, "n"))
                .raw(b"PAMZ");
        }),
        Expect::Code(21200, "new_end"),
    );
}

#[test]
fn huge_slices_and_chains() {
    let src = source_bytes();
    let s = item_of(&src);
    let t = item_of(&src[..16]);
    case(
        "slice_offset_2^60_of_source",
        &Std::new(t).with(t, slice(s, 1 << 60)).bytes(),
        Expect::Code(21200, "new_end"),
    );
    case(
        "slice_offset_overflows_u64",
        &Std::new(t).with(t, slice(s, u64::MAX - 7)).bytes(),
        Expect::Code(21200, "new_end"),
    );
    // A 16-byte slice at the end of a 2^60-byte all_zeros item: views, no materialization.
    let z16 = item_of(&[0; 16]);
    let huge = fake(1 << 60, "huge zeros");
    case(
        "slice_of_2^60_byte_zeros_item",
        &Std::new(z16)
            .with(z16, slice(huge, (1 << 60) - 16))
            .with(huge, zeros())
            .bytes(),
        Expect::Target(vec![0; 16]),
    );
    // A 2^60-byte slice of a 2^61-byte item as the target: refused before writing anything.
    let big = fake(1 << 61, "big zeros");
    let t60 = fake(1 << 60, "t60");
    case(
        "slice_2^60_bytes_as_target",
        &Std::new(t60)
            .with(t60, slice(big, 0))
            .with(big, zeros())
            .bytes(),
        Expect::Code(20302, "free space"),
    );
    let (a, b) = (fake(1 << 63, "a"), fake(1 << 63, "b"));
    case(
        "chain_total_overflows_u64",
        &Std::new(t)
            .with(t, chain(&[a, b]))
            .with(a, zeros())
            .with(b, zeros())
            .bytes(),
        Expect::Code(31701, "more than 2^64"),
    );
}

#[test]
fn huge_targets_are_refused_before_writing() {
    let t = fake(1 << 50, "2^50 zeros");
    case(
        "all_zeros_target_2^50",
        &Std::new(t).with(t, zeros()).bytes(),
        Expect::Code(20302, "free space"),
    );
    // chain(L, L) doubling 62 times from one inline byte: a 2^62-byte target.
    let mut d = Std::new(fake(1 << 62, "level 62")).inline(b"x");
    let mut below = item_of(b"x");
    for level in 1..=62 {
        let it = if level == 62 {
            d.target
        } else {
            fake(1 << level, &format!("level {level}"))
        };
        d = d.with(it, chain(&[below, below]));
        below = it;
    }
    case(
        "exponential_chain_target_2^62",
        &d.bytes(),
        Expect::Code(20302, "free space"),
    );
}

// ---------------------------------------------------------------------------------------------
// Depth, cycles, DAGs
// ---------------------------------------------------------------------------------------------

/// `levels` nested archives; the innermost one carries the target as its inline assets.
fn nested_archives(levels: usize, target: &[u8]) -> Vec<u8> {
    let t = item_of(target);
    let mut inner = Std::new(t).inline(target).bytes();
    for _ in 0..levels {
        inner = Std::new(t).nest(inner).bytes();
    }
    inner
}

#[test]
fn nesting_depth_bound_at_its_edge() {
    let target = b"from the innermost archive".to_vec();
    case(
        "nested_archives_at_MAX_NESTING_DEPTH",
        &nested_archives(MAX_NESTING_DEPTH, &target),
        Expect::Target(target.clone()),
    );
    case(
        "nested_archives_one_past",
        &nested_archives(MAX_NESTING_DEPTH + 1, &target),
        Expect::Code(1, "Nested archives deeper"),
    );
    case(
        "nested_archives_1000",
        &nested_archives(1000, &target),
        Expect::Code(1, "Nested archives deeper"),
    );
}

/// The target through `levels` recipes: `levels - 1` one-item chains, then a slice of the inline
/// blob (the target plus one byte, so that the target is not itself in the pantry).
fn chain_of_chains(levels: usize, target: &[u8]) -> Vec<u8> {
    let t = item_of(target);
    let mut blob = target.to_vec();
    blob.push(b'!');
    let mut d = Std::new(t).inline(&blob);
    let mut result = t;
    for level in 1..levels {
        let below = fake(t.len, &format!("chain level {level}"));
        d = d.with(result, chain(&[below]));
        result = below;
    }
    d.with(result, slice(item_of(&blob), 0)).bytes()
}

#[test]
fn resolution_depth_bound_at_its_edge() {
    let target = b"deep recipes".to_vec();
    case(
        "recipe_depth_at_MAX_RESOLUTION_DEPTH",
        &chain_of_chains(MAX_RESOLUTION_DEPTH, &target),
        Expect::Target(target.clone()),
    );
    case(
        "recipe_depth_one_past",
        &chain_of_chains(MAX_RESOLUTION_DEPTH + 1, &target),
        Expect::Code(1, "nest deeper"),
    );
    case(
        "recipe_depth_100000",
        &chain_of_chains(100_000, &target),
        Expect::Code(1, "nest deeper"),
    );
}

#[test]
fn legacy_recipe_depth_bound_at_its_edge() {
    case(
        "legacy_recipe_depth_at_MAX_RECIPE_DEPTH",
        &legacy_nested_zeros(MAX_RECIPE_DEPTH, 32),
        Expect::Target(vec![0; 32]),
    );
    case(
        "legacy_recipe_depth_one_past",
        &legacy_nested_zeros(MAX_RECIPE_DEPTH + 1, 32),
        Expect::Code(1, "nested deeper"),
    );
    case(
        "legacy_recipe_depth_100000",
        &legacy_nested_zeros(100_000, 32),
        Expect::Code(1, "nested deeper"),
    );
}

#[test]
fn cycles_terminate() {
    let target = b"cycle".to_vec();
    let t = item_of(&target);
    let (a, b) = (fake(5, "A"), fake(5, "B"));
    case(
        "cycle_a_needs_b_needs_a",
        &Std::new(t)
            .with(t, chain(&[a]))
            .with(a, chain(&[b]))
            .with(b, chain(&[a]))
            .bytes(),
        Expect::Code(1, "no recipe produces the target"),
    );
    // The same cycle, but A also has a way out (slice of the inline assets): resolves.
    let mut d = Std::new(t)
        .inline(&target)
        .with(t, chain(&[a]))
        .with(b, chain(&[a]));
    d.sets
        .push((a, vec![chain(&[b]), slice(item_of(&target), 0)]));
    case("cycle_with_a_way_out", &d.bytes(), Expect::Target(target));
}

/// L_0 = `leaf`, L_k = chain(L_{k-1}, L_{k-1}); the target is `top(L_levels)`.
fn doubling(levels: u32, leaf: (It, R), target: It, top: impl FnOnce(It) -> R) -> Std {
    let mut d = Std::new(target);
    d = d.with(leaf.0, leaf.1);
    let mut below = leaf.0;
    for level in 1..=levels {
        let it = fake(leaf.0.len << level, &format!("L{level}"));
        d = d.with(it, chain(&[below, below]));
        below = it;
    }
    d.with(target, top(below))
}

#[test]
fn exponential_dags_stay_cheap() {
    // 63 doublings of one zero byte: 2^63 bytes described by 64 recipes; slicing 16 bytes out of
    // it resolves and streams in O(levels) because zero runs merge.
    let z16 = item_of(&[0; 16]);
    let d = doubling(63, (fake(1, "zero byte"), zeros()), z16, |top| {
        slice(top, 12345)
    });
    case(
        "exponential_dag_64_levels_of_zeros",
        &d.bytes(),
        Expect::Target(vec![0; 16]),
    );
    // The same with a real byte: the view of L_63 would have 2^63 pieces; MAX_VIEW_PIECES stops it.
    let x = item_of(b"x");
    let t = item_of(b"xxxxxxxxxxxxxxxx");
    let mut d = doubling(63, (x, chain(&[x])), t, |top| slice(top, 12345)).inline(b"x");
    d.sets.remove(0); // the leaf is the inline blob itself
    case(
        "exponential_dag_64_levels_of_bytes",
        &d.bytes(),
        Expect::Code(1, "pieces"),
    );
}

#[test]
fn view_pieces_bound_at_its_edge() {
    // The target is L_k itself: 2^k one-byte pieces of the inline blob.
    let with_levels = |levels: u32| {
        let x = item_of(b"x");
        let target = vec![b'x'; 1 << levels];
        let mut d = doubling(levels - 1, (x, chain(&[x])), item_of(&target), |top| {
            chain(&[top, top])
        })
        .inline(b"x");
        d.sets.remove(0);
        (d.bytes(), target)
    };
    let edge = MAX_VIEW_PIECES.trailing_zeros();
    assert_eq!(1usize << edge, MAX_VIEW_PIECES);
    let (delta, target) = with_levels(edge);
    case(
        "view_pieces_at_MAX_VIEW_PIECES",
        &delta,
        Expect::Target(target),
    );
    let (delta, _) = with_levels(edge + 1);
    case("view_pieces_one_past", &delta, Expect::Code(1, "pieces"));
}

/// T = chain(Z_1, …, Z_n) where each Z_i is a distinct one-byte `all_zeros` item: the plan has
/// n + 1 nodes.
fn distinct_zero_chain(n: usize) -> (Vec<u8>, Vec<u8>) {
    let target = vec![0u8; n];
    let parts: Vec<It> = (0..n).map(|i| fake(1, &format!("z{i}"))).collect();
    let mut d = Std::new(item_of(&target));
    d.sets.push((item_of(&target), vec![chain(&parts)]));
    for p in &parts {
        d.sets.push((*p, vec![zeros()]));
    }
    (d.bytes(), target)
}

#[test]
fn plan_nodes_bound_at_its_edge() {
    // The bound's logic at a small limit, in process (MAX_PLAN_NODES itself needs a ~120 MB
    // delta: see `plan_nodes_at_the_real_bound`, run with --ignored).
    use adudiffapi::format::{parse_delta, Item};
    use adudiffapi::io::SharedBytes;
    let limit = 1000;
    let (at, _) = distinct_zero_chain(limit - 1);
    let delta = parse_delta(SharedBytes::from_vec(at)).unwrap();
    let plan = adudiffapi::plan::plan_with_limit(&delta, &Item::empty(), limit).unwrap();
    assert_eq!(plan.nodes.len(), limit);
    let (past, _) = distinct_zero_chain(limit);
    let delta = parse_delta(SharedBytes::from_vec(past)).unwrap();
    let err = adudiffapi::plan::plan_with_limit(&delta, &Item::empty(), limit).unwrap_err();
    assert_eq!(err.code, 1);
    assert!(err.text().contains("production steps"), "{}", err.text());
}

#[test]
fn zero_length_ingredients_cost_no_plan_nodes() {
    // T = chain(M, ε × (MAX_PLAN_NODES + 1)), M = slice(blob, 0): 8 MiB of zero-length items
    // share one plan node (before, each cost one, and this delta aborted the process on
    // allocation failure under the address-space limit).
    let target = b"plan node edge".to_vec();
    let t = item_of(&target);
    let mut blob = target.clone();
    blob.push(b'!');
    let mid = fake(t.len, "mid");
    let mut items = vec![mid];
    items.extend(std::iter::repeat_n(empty(), MAX_PLAN_NODES + 1));
    let d = Std::new(t)
        .inline(&blob)
        .with(t, chain(&items))
        .with(mid, slice(item_of(&blob), 0));
    case(
        "zero_length_ingredients_2^20+1",
        &d.bytes(),
        Expect::Target(target),
    );
}

#[test]
#[ignore = "~120 MB delta and ~1.25 GiB of address space; run with --ignored"]
fn plan_nodes_at_the_real_bound() {
    let (delta, target) = distinct_zero_chain(MAX_PLAN_NODES - 1);
    case_with(
        "plan_nodes_at_MAX_PLAN_NODES",
        &delta,
        Expect::Target(target),
        BIG_AS_LIMIT,
    );
    let (delta, _) = distinct_zero_chain(MAX_PLAN_NODES);
    case_with(
        "plan_nodes_one_past",
        &delta,
        Expect::Code(1, "production steps"),
        BIG_AS_LIMIT,
    );
}

/// The same ~120 MB delta of recipes under tighter address-space limits: the plan-node bound
/// shrinks to what the memory budget holds, so the apply ends with a clean code (1: too many
/// production steps; 20301: no room for the delta's private copy) instead of an aborted
/// allocation.
#[test]
fn plan_nodes_under_tight_limits() {
    let (delta, _) = distinct_zero_chain(MAX_PLAN_NODES - 1);
    for mib in [160u64, 256, 384, 512] {
        let name = format!("plan_nodes_at_MAX_PLAN_NODES_under_{mib}_MiB");
        let work = tempfile::tempdir().unwrap();
        let (source, delta_path, target) = (
            work.path().join("source"),
            work.path().join("delta"),
            work.path().join("target"),
        );
        std::fs::write(&source, source_bytes()).unwrap();
        std::fs::write(&delta_path, &delta).unwrap();
        let mut job = ChildApply::new(&source, &delta_path, &target);
        job.address_space = mib << 20;
        job.timeout = TIMEOUT;
        let r = run_child(&job);
        println!(
            "HOSTILE | {name} | {:?} | {}",
            r.code,
            r.text.lines().next().unwrap_or("")
        );
        assert!(
            r.abnormal.is_none(),
            "{name}: child {:?}: {}",
            r.abnormal,
            r.stderr
        );
        assert!(
            matches!(r.code, Some(0 | 1 | 20301)),
            "{name}: {:?} {}",
            r.code,
            r.text
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Compression bombs
// ---------------------------------------------------------------------------------------------

/// BSDIFF40 patch with the given control tuples and diff/extra contents (bzip2 level 9).
fn bsdiff40(tuples: &[(i64, i64, i64)], diff: &[u8], extra: &[u8], new_len: u64) -> Vec<u8> {
    fn offtout(v: i64) -> [u8; 8] {
        let mut raw = v.unsigned_abs();
        if v < 0 {
            raw |= 1 << 63;
        }
        raw.to_le_bytes()
    }
    fn bz(data: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
    let mut control = Vec::new();
    for &(x, y, z) in tuples {
        control.extend(offtout(x));
        control.extend(offtout(y));
        control.extend(offtout(z));
    }
    let (c, d, e) = (bz(&control), bz(diff), bz(extra));
    let mut out = b"BSDIFF40".to_vec();
    out.extend(offtout(c.len() as i64));
    out.extend(offtout(d.len() as i64));
    out.extend(offtout(new_len as i64));
    out.extend(c);
    out.extend(d);
    out.extend(e);
    out
}

/// A delta whose target is bspatch(patch in the inline assets, the source).
fn bspatch_delta(patch: &[u8], target: &[u8]) -> Vec<u8> {
    let src = source_bytes();
    let mut d = Std::new(item_of(target))
        .inline(patch)
        .with(item_of(target), bspatch(item_of(patch), item_of(&src)));
    d.source = item_of(&src);
    d.bytes()
}

/// What bspatch yields for a single tuple (n, 0, 0) with n zero diff bytes: the old bytes, then
/// zeros.
fn old_then_zeros(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let src = source_bytes();
    let k = n.min(src.len());
    out[..k].copy_from_slice(&src[..k]);
    out
}

#[test]
fn bspatch_idle_tuple_cap_at_its_edge() {
    let cap = adudiffapi::codec::bspatch::MAX_IDLE_TUPLES as usize;
    let target = old_then_zeros(64);
    let with_idle = |idle: usize| {
        let mut tuples = vec![(0, 0, 0); idle];
        tuples.push((64, 0, 0));
        bsdiff40(&tuples, &[0; 64], &[], 64)
    };
    case(
        "bspatch_idle_tuples_at_cap",
        &bspatch_delta(&with_idle(cap), &target),
        Expect::Target(target.clone()),
    );
    case(
        "bspatch_idle_tuples_one_past",
        &bspatch_delta(&with_idle(cap + 1), &target),
        Expect::Code(30900, "produce nothing"),
    );
}

/// Size of the bombs' outputs (streamed to the target; memory must not follow it).
const BOMB: usize = 32 << 20;

#[test]
fn bzip2_bomb_in_bspatch_is_streamed() {
    let target = old_then_zeros(BOMB);
    let patch = bsdiff40(&[(BOMB as i64, 0, 0)], &vec![0; BOMB], &[], BOMB as u64);
    assert!(patch.len() < 1024, "{}", patch.len());
    case(
        "bzip2_bomb_32MiB_bspatch",
        &bspatch_delta(&patch, &target),
        Expect::Target(target),
    );
    // A patch announcing 2^50 bytes for a 64-byte result: refused before decoding.
    let liar = bsdiff40(&[(64, 0, 0)], &[0; 64], &[], 1 << 50);
    case(
        "bspatch_new_size_2^50_for_64_bytes",
        &bspatch_delta(&liar, &old_then_zeros(64)),
        Expect::Code(30900, "patch produces"),
    );
}

fn deflate(init: u64, data: &[u8]) -> Vec<u8> {
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    let level = flate2::Compression::best();
    match init {
        0 => {
            let mut e = DeflateEncoder::new(Vec::new(), level);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        1 => {
            let mut e = GzEncoder::new(Vec::new(), level);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = ZlibEncoder::new(Vec::new(), level);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

#[test]
fn zlib_bombs_are_streamed_and_capped() {
    let zeros_out = vec![0u8; BOMB];
    for init in 0..3u64 {
        let blob = deflate(init, &zeros_out);
        let t = item_of(&zeros_out);
        case(
            &format!("zlib_bomb_32MiB_init{init}"),
            &Std::new(t)
                .inline(&blob)
                .with(t, inflate(init, item_of(&blob)))
                .bytes(),
            Expect::Target(zeros_out.clone()),
        );
    }
    // A stream of 256 MiB whose recipe claims 16 bytes: only 16 are ever inflated.
    let blob = deflate(0, &vec![0u8; 256 << 20]);
    let t = item_of(&[0; 16]);
    case(
        "zlib_bomb_256MiB_stream_16_byte_result",
        &Std::new(t)
            .inline(&blob)
            .with(t, inflate(0, item_of(&blob)))
            .bytes(),
        Expect::Target(vec![0; 16]),
    );
}

/// A hand-made zstd frame: no content size, window log `window_log`, one raw block.
fn zstd_frame(window_log: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, (window_log - 10) << 3];
    let header = ((data.len() as u32) << 3) | 1; // raw, last block
    f.extend_from_slice(&header.to_le_bytes()[..3]);
    f.extend_from_slice(data);
    f
}

#[test]
fn zstd_bombs_and_huge_windows() {
    let zeros_out = vec![0u8; BOMB];
    let mut buf: Vec<u8> = Vec::with_capacity(zstd_safe::compress_bound(BOMB));
    zstd_safe::compress(&mut buf, &zeros_out, 3).unwrap();
    let t = item_of(&zeros_out);
    case(
        "zstd_bomb_32MiB",
        &Std::new(t)
            .inline(&buf)
            .with(t, zstd(item_of(&buf), None))
            .bytes(),
        Expect::Target(zeros_out),
    );
    let data = b"sixteen bytes!!!";
    let t = item_of(data);
    // Window 2^27 (the default maximum): accepted; memory follows the frame, within the limit.
    let ok = zstd_frame(27, data);
    case(
        "zstd_window_2^27",
        &Std::new(t)
            .inline(&ok)
            .with(t, zstd(item_of(&ok), None))
            .bytes(),
        Expect::Target(data.to_vec()),
    );
    // Window 2^31: refused by the decoder (windowLogMax 27, 28 with a prefix), no allocation.
    let big = zstd_frame(31, data);
    case(
        "zstd_window_2^31",
        &Std::new(t)
            .inline(&big)
            .with(t, zstd(item_of(&big), None))
            .bytes(),
        Expect::Code(20201, "ZSTD_decompressStream"),
    );
    let src = source_bytes();
    let mut with_prefix = Std::new(t)
        .inline(&big)
        .with(t, zstd(item_of(&big), Some(item_of(&src))));
    with_prefix.source = item_of(&src);
    case(
        "zstd_window_2^31_with_prefix",
        &with_prefix.bytes(),
        Expect::Code(20201, "ZSTD_decompressStream"),
    );
}

// ---------------------------------------------------------------------------------------------
// Extended format: deflate_reconstruct (docs/EXTENDED-FORMAT.md)
// ---------------------------------------------------------------------------------------------

/// An extended delta whose target is `deflate_reconstruct(plain, corrections)` with the
/// codec numbers `codec`; `plain_recipe` produces `plain` (none: it is the source).
fn reconstruct_delta(
    target: &[u8],
    plain: (
        &adudiffapi::format::Item,
        Option<adudiffapi::format::Recipe>,
    ),
    corrections: &[u8],
    codec: [u64; 2],
) -> Vec<u8> {
    use adudiffapi::format::writer::{item_of, write_delta_to_vec, DeltaBuilder};
    use adudiffapi::format::{Recipe, RecipeKind};
    let target_item = item_of(target);
    let mut recipes = vec![Recipe {
        kind: RecipeKind::DeflateReconstruct,
        result: target_item.clone(),
        numbers: codec.to_vec(),
        items: vec![plain.0.clone(), item_of(corrections)],
    }];
    recipes.extend(plain.1);
    write_delta_to_vec(&DeltaBuilder {
        target: target_item,
        source: adudiffapi::format::Item::empty(),
        recipes,
        inline_assets: Some(corrections.to_vec()),
        remainder: None,
    })
    .unwrap()
}

fn raw_deflate(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn chunk_blob(chunks: &[(u64, u64, &[u8])], count: Option<u32>) -> Vec<u8> {
    let mut b = b"ADPF".to_vec();
    b.extend_from_slice(&count.unwrap_or(chunks.len() as u32).to_be_bytes());
    for (plain, deflate, corrections) in chunks {
        b.extend_from_slice(&plain.to_be_bytes());
        b.extend_from_slice(&deflate.to_be_bytes());
        b.extend_from_slice(&(corrections.len() as u64).to_be_bytes());
        b.extend_from_slice(corrections);
    }
    b
}

/// Extended revision 2's packed recipe sets (docs/EXTENDED-FORMAT.md): lengths that lie, a
/// small frame that claims a large cookbook, a corrupt frame — each refused with 39004 before
/// any recipe runs (and before an allocation of the claimed size).
#[test]
fn extended_packed_recipe_sets() {
    use adudiffapi::codec::deflate_reconstruct::analyse;
    use adudiffapi::format::writer::item_of;
    let source = source_bytes();
    let deflated = raw_deflate(&source, 6);
    let a = analyse(&deflated, usize::MAX).unwrap();
    let good = reconstruct_delta(&deflated, (&item_of(&source), None), &a.corrections, [1, 1]);
    assert_eq!(&good[4..12], b"ADUDIFF\x02");
    case("packed recipe sets", &good, Expect::Target(deflated));
    let at = good
        .windows(19)
        .position(|w| w == b"deflate_reconstruct")
        .unwrap()
        + 19;
    let u64_at = |b: &[u8], p: usize| u64::from_be_bytes(b[p..p + 8].try_into().unwrap());
    let frame_end = at + 16 + u64_at(&good, at + 8) as usize;
    let with_section = |section: &[u8]| {
        let mut b = good[..at].to_vec();
        b.extend_from_slice(section);
        b.extend_from_slice(&good[frame_end..]);
        b
    };
    let mut lie = good.clone();
    lie[at..at + 8].copy_from_slice(&(u64_at(&good, at) + 1).to_be_bytes());
    case(
        "packed: unpacked length + 1",
        &lie,
        Expect::Code(39004, "declares"),
    );
    lie[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    case(
        "packed: unpacked length 2^64-1",
        &lie,
        Expect::Code(39004, "bound"),
    );
    // 64 MiB of zeros in a frame of a few KiB (the writer never packs that): the ratio
    // bound refuses it unread.
    let zeros = vec![0u8; 64 << 20];
    let mut frame = Vec::with_capacity(zstd_safe::compress_bound(zeros.len()));
    zstd_safe::compress(&mut frame, &zeros[..], 3).unwrap();
    let mut bomb = (zeros.len() as u64).to_be_bytes().to_vec();
    bomb.extend_from_slice(&(frame.len() as u64).to_be_bytes());
    bomb.extend_from_slice(&frame);
    case(
        "packed: 64 MiB from a tiny frame",
        &with_section(&bomb),
        Expect::Code(39004, "bound"),
    );
    let mut corrupt = good.clone();
    for k in (at + 30..frame_end - 4).step_by(7) {
        corrupt[k] ^= 0x5A;
    }
    case(
        "packed: corrupt frame",
        &corrupt,
        Expect::Code(39004, "packed recipe sets"),
    );
}

#[test]
fn deflate_reconstruct_bounds_and_codec_versions() {
    use adudiffapi::codec::deflate_reconstruct::{analyse, MAX_CHUNK_PLAIN};
    use adudiffapi::format::writer::item_of;
    const FAILED: u32 = 39001;
    let source = source_bytes();
    let source_item = item_of(&source);
    let deflated = raw_deflate(&source, 6);
    let a = analyse(&deflated, usize::MAX).unwrap();
    let n = deflated.len() as u64;
    let plain = (&source_item, None);

    // Legitimate: the source's own deflate stream, rebuilt.
    case(
        "deflate_reconstruct of the source",
        &reconstruct_delta(&deflated, plain.clone(), &a.corrections, [1, 1]),
        Expect::Target(deflated.clone()),
    );
    // Codec versions this applier does not know: refused before anything is produced.
    for codec in [[1, 2], [1, 0], [2, 3], [3, 1], [u64::MAX, u64::MAX]] {
        case(
            &format!("deflate_reconstruct codec {codec:?}"),
            &reconstruct_delta(&deflated, plain.clone(), &a.corrections, codec),
            Expect::Code(39000, "not supported"),
        );
    }
    // Codec 2 version 2 (GNU gzip or pigz re-encoder) given a preflate blob: a read error.
    case(
        "deflate_reconstruct codec [2, 2] with a preflate blob",
        &reconstruct_delta(&deflated, plain.clone(), &a.corrections, [2, 2]),
        Expect::Code(FAILED, "codec-2 blob"),
    );
    // Codec 2 (exact re-encoder) blobs that are not one: refused with the extended format's
    // read error before anything is encoded.
    for (blob, fragment) in [
        (&b"ADEX\x01"[..], "6 bytes"),
        (&b"ADEX\x07\x09"[..], "encoder 7"),
        (&b"ADEX\x01\x00"[..], "level 0"),
        (&b"ADPF\x01\x09"[..], "ADEX"),
    ] {
        case(
            &format!("deflate_reconstruct codec 2 blob {blob:?}"),
            &reconstruct_delta(&deflated, plain.clone(), blob, [2, 1]),
            Expect::Code(39001, fragment),
        );
    }
    let hostile: Vec<(&str, Vec<u8>, &'static str)> = vec![
        (
            "chunk count u32::MAX, one chunk present",
            chunk_blob(&[(65536, n, b"x")], Some(u32::MAX)),
            "truncated",
        ),
        (
            "corrections length 2^60",
            {
                let mut b = chunk_blob(&[(65536, n, b"")], None);
                let at = b.len() - 8;
                b[at..].copy_from_slice(&(1u64 << 60).to_be_bytes());
                b
            },
            "truncated",
        ),
        (
            "chunk plain length past the bound",
            chunk_blob(&[(MAX_CHUNK_PLAIN + 1, n, b"")], None),
            "outside the bounds",
        ),
        (
            "chunk plain length 2^62",
            chunk_blob(&[(1 << 62, n, b""), (1 << 62, 1, b"")], None),
            "outside the bounds",
        ),
        (
            "chunks that do not add up to the plain text",
            chunk_blob(&[(100, n, b"")], None),
            "the recipe",
        ),
        (
            "65536 empty chunks",
            chunk_blob(&vec![(1u64, 1u64, &b""[..]); 65536], None),
            "",
        ),
        (
            "garbage corrections",
            chunk_blob(&[(65536, n, &[0x5a; 3000])], None),
            "",
        ),
        ("not a codec-1 blob", b"PK\x03\x04garbage".to_vec(), "ADPF"),
    ];
    for (name, blob, fragment) in hostile {
        // The last two shapes fail at the rebuild (corrections do not apply, or a chunk's
        // length differs); all with the extended format's own code.
        case(
            &format!("deflate_reconstruct: {name}"),
            &reconstruct_delta(&deflated, plain.clone(), &blob, [1, 1]),
            Expect::Code(FAILED, fragment),
        );
    }
}

/// A 24 MiB plain text (three 8 MiB chunks) rebuilt under the address-space limit.
#[test]
fn deflate_reconstruct_of_large_plain_text_fits_the_limit() {
    use adudiffapi::codec::deflate_reconstruct::analyse;
    use adudiffapi::format::writer::item_of;
    use adudiffapi::format::{Recipe, RecipeKind};
    let len = 24usize << 20;
    let text: Vec<u8> = (0..len as u32)
        .map(|i| (i / 4096).wrapping_mul(2_654_435_761).rotate_left(i % 13) as u8 & 0x1f)
        .collect();
    let deflated = raw_deflate(&text, 9);
    let a = analyse(&deflated, usize::MAX).unwrap();
    let text_item = item_of(&text);
    // The text is stored zstd-compressed in the delta: a realistic producer ahead of the rebuild.
    let frame = zstd_safe_compress(&text);
    let frame_item = item_of(&frame);
    let plain_recipe = Recipe {
        kind: RecipeKind::ZstdDecompression,
        result: text_item.clone(),
        numbers: vec![],
        items: vec![frame_item.clone()],
    };
    let mut inline = frame.clone();
    inline.extend_from_slice(&a.corrections);
    let corrections_item = item_of(&a.corrections);
    let slice_recipes = vec![
        Recipe {
            kind: RecipeKind::Slice,
            result: frame_item,
            numbers: vec![0],
            items: vec![item_of(&inline)],
        },
        Recipe {
            kind: RecipeKind::Slice,
            result: corrections_item.clone(),
            numbers: vec![frame.len() as u64],
            items: vec![item_of(&inline)],
        },
    ];
    let target_item = item_of(&deflated);
    let mut recipes = vec![
        Recipe {
            kind: RecipeKind::DeflateReconstruct,
            result: target_item.clone(),
            numbers: vec![1, 1],
            items: vec![text_item, corrections_item],
        },
        plain_recipe,
    ];
    recipes.extend(slice_recipes);
    let delta =
        adudiffapi::format::writer::write_delta_to_vec(&adudiffapi::format::writer::DeltaBuilder {
            target: target_item,
            source: adudiffapi::format::Item::empty(),
            recipes,
            inline_assets: Some(inline),
            remainder: None,
        })
        .unwrap();
    case(
        "deflate_reconstruct of 24 MiB (3 chunks)",
        &delta,
        Expect::Target(deflated),
    );
}

fn zstd_safe_compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(data.len()));
    zstd_safe::compress(&mut out, data, 3).unwrap();
    out
}

/// deflate_reconstruct whose plain text is an `all_zeros` item of 2^60 bytes: the chunk table
/// cannot describe it (at most 32 MiB per chunk, 24 bytes per chunk header), refused before
/// any chunk is read.
#[test]
fn deflate_reconstruct_of_a_2_60_byte_plain_text_is_refused() {
    use adudiffapi::codec::deflate_reconstruct::analyse;
    use adudiffapi::format::{Item, Recipe, RecipeKind};
    let source = source_bytes();
    let deflated = raw_deflate(&source, 6);
    let a = analyse(&deflated, usize::MAX).unwrap();
    let huge = Item::with_sha256(1 << 60, [0x60; 32]);
    let zeros = Recipe {
        kind: RecipeKind::AllZeros,
        result: huge.clone(),
        numbers: vec![],
        items: vec![],
    };
    case(
        "deflate_reconstruct: plain text 2^60 zeros",
        &reconstruct_delta(&deflated, (&huge, Some(zeros)), &a.corrections, [1, 1]),
        Expect::Code(39001, "the recipe"),
    );
}

// ---------------------------------------------------------------------------------------------
// Extended format: zstd_compression_exact (docs/EXTENDED-FORMAT.md)
// ---------------------------------------------------------------------------------------------

/// An extended delta whose target (`target_len` bytes, SHA-256 of `target`, or a made-up
/// hash when the length differs) is `zstd_compression_exact(numbers)` of `plain`, which
/// `plain_recipe` produces (none: the source).
fn zstd_exact_delta(
    target: &[u8],
    target_len: u64,
    plain: (
        &adudiffapi::format::Item,
        Option<adudiffapi::format::Recipe>,
    ),
    numbers: Vec<u64>,
    inline_assets: Option<Vec<u8>>,
) -> Vec<u8> {
    use adudiffapi::format::writer::{item_of, write_delta_to_vec, DeltaBuilder};
    use adudiffapi::format::{Item, Recipe, RecipeKind};
    let target_item = if target_len == target.len() as u64 {
        item_of(target)
    } else {
        Item::with_sha256(target_len, [0x5a; 32])
    };
    let mut recipes = vec![Recipe {
        kind: RecipeKind::ZstdCompressionExact,
        result: target_item.clone(),
        numbers,
        items: vec![plain.0.clone()],
    }];
    recipes.extend(plain.1);
    write_delta_to_vec(&DeltaBuilder {
        target: target_item,
        source: adudiffapi::format::Item::empty(),
        recipes,
        inline_assets,
        remainder: None,
    })
    .unwrap()
}

/// The frame the applier's compressor makes of `content` with `p`.
fn zstd_made(content: &[u8], p: adudiffapi::codec::zstd_compress::ZstdParams) -> Vec<u8> {
    use std::io::Read;
    let len = content.len() as u64;
    let mut r = adudiffapi::codec::ZstdCompressReader::new(content, len, p, 2, 1 << 40)
        .unwrap()
        .take(1 << 40);
    let mut out = Vec::new();
    // It ends with an error (the frame is not 2^40 bytes) after the whole frame.
    let _ = r.read_to_end(&mut out);
    out
}

#[test]
fn zstd_compression_exact_bounds_and_parameters() {
    use adudiffapi::codec::zstd_compress::{
        compress, encoder_version, ZstdParams, FLAG_CHECKSUM, FLAG_CONTENT_SIZE, FLAG_JOBS,
        FLAG_PLEDGED,
    };
    use adudiffapi::format::writer::item_of;
    use adudiffapi::format::{Item, Recipe, RecipeKind};
    const UNSUPPORTED: u32 = 39002;
    const FAILED: u32 = 39003;
    let source = source_bytes();
    let source_item = item_of(&source);
    let p = ZstdParams {
        level: 19,
        flags: FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED | FLAG_JOBS,
        window_log: 0,
        job_size: 0,
    };
    let frame = zstd_made(&source, p);
    assert!(compress(&source, p, frame.len() as u64).unwrap() == frame);
    let n = frame.len() as u64;
    let plain = (&source_item, None);
    let numbers = p.to_numbers();
    case(
        "zstd_compression_exact of the source",
        &zstd_exact_delta(&frame, n, plain.clone(), numbers.clone(), None),
        Expect::Target(frame.clone()),
    );
    // Parameters this applier cannot reproduce exactly: refused before anything is produced.
    let with = |i: usize, v: u64| {
        let mut x = numbers.clone();
        x[i] = v;
        x
    };
    for (name, bad) in [
        ("another libzstd (1.5.4)", with(0, 10504)),
        ("encoder u64::MAX", with(0, u64::MAX)),
        ("level 23", with(1, 23)),
        ("level -2^62", with(1, (-(1i64 << 62)) as u64)),
        ("unknown flag bit 5", with(2, numbers[2] | 32)),
        ("window log 31", with(3, 31)),
        ("window log 28", with(3, 28)),
        ("job size 2^40", with(4, 1 << 40)),
    ] {
        case(
            &format!("zstd_compression_exact: {name}"),
            &zstd_exact_delta(&frame, n, plain.clone(), bad, None),
            Expect::Code(UNSUPPORTED, "zstd_compression_exact"),
        );
    }
    // Lengths: a frame of another length than the recipe's (the frame is made, then refused
    // at its end), and a content no frame of the length can hold (refused at resolution).
    case(
        "zstd_compression_exact: frame one byte longer than made",
        &zstd_exact_delta(&frame, n + 1, plain.clone(), numbers.clone(), None),
        Expect::Code(FAILED, "the frame has"),
    );
    let zeros = |len: u64| {
        let it = Item::with_sha256(len, [0x7e; 32]);
        let r = Recipe {
            kind: RecipeKind::AllZeros,
            result: it.clone(),
            numbers: vec![],
            items: vec![],
        };
        (it, r)
    };
    let (z60, r60) = zeros(1 << 60);
    case(
        "zstd_compression_exact: 2^60 bytes of content into 1 MiB",
        &zstd_exact_delta(&frame, 1 << 20, (&z60, Some(r60)), numbers.clone(), None),
        Expect::Code(FAILED, "cannot compress"),
    );
    // Level 22 (window 2^27, 1 GiB of tables) with a pledged 2^40-byte content into a 64 MiB
    // frame: the compressor's memory exceeds the budget, refused before it is allocated.
    let (z40, r40) = zeros(1 << 40);
    let l22 = ZstdParams {
        level: 22,
        flags: FLAG_PLEDGED | FLAG_CONTENT_SIZE,
        window_log: 0,
        job_size: 0,
    };
    case(
        "zstd_compression_exact: level 22, pledged 2^40",
        &zstd_exact_delta(&frame, 64 << 20, (&z40, Some(r40)), l22.to_numbers(), None),
        Expect::Code(20301, "zstd compressor"),
    );
    assert_eq!(numbers[0], encoder_version());
}

/// 24 MiB of content compressed in job mode under the address-space limit (one worker there):
/// byte-exact at level 9; at level 19 (a 90 MiB context, 32 MiB jobs and a worker thread's
/// reservations) it does not fit: refused by the budget check (20301) or, when the estimate
/// passes, by libzstd's failed allocation (39003) — never a crash or a partial target.
#[test]
fn zstd_compression_exact_of_24_mib_under_the_limit() {
    use adudiffapi::codec::zstd_compress::{
        compress, ZstdParams, FLAG_CHECKSUM, FLAG_CONTENT_SIZE, FLAG_JOBS, FLAG_PLEDGED,
    };
    use adudiffapi::format::writer::item_of;
    use adudiffapi::format::{Recipe, RecipeKind};
    let len = 24usize << 20;
    let text: Vec<u8> = (0..len as u32)
        .map(|i| (i / 4096).wrapping_mul(2_654_435_761).rotate_left(i % 13) as u8 & 0x1f)
        .collect();
    let (text_item, stored) = (item_of(&text), zstd_safe_compress(&text));
    let delta = |p: ZstdParams, frame: &[u8]| {
        // The content travels as a zstd frame at level 3 (a realistic producer ahead).
        let plain_recipe = Recipe {
            kind: RecipeKind::ZstdDecompression,
            result: text_item.clone(),
            numbers: vec![],
            items: vec![item_of(&stored)],
        };
        zstd_exact_delta(
            frame,
            frame.len() as u64,
            (&text_item, Some(plain_recipe)),
            p.to_numbers(),
            Some(stored.clone()),
        )
    };
    let mut p = ZstdParams {
        level: 9,
        flags: FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED | FLAG_JOBS,
        window_log: 0,
        job_size: 0,
    };
    let frame = zstd_made(&text, p);
    assert!(compress(&text, p, frame.len() as u64).unwrap() == frame);
    case(
        "zstd_compression_exact level 9 job mode, 24 MiB",
        &delta(p, &frame),
        Expect::Target(frame),
    );
    p.level = 19;
    let frame = zstd_made(&text, p);
    case(
        "zstd_compression_exact level 19 job mode, 24 MiB",
        &delta(p, &frame),
        Expect::AnyOf(&[20301, 39003]),
    );
}
