//! `recompress`: re-gzipped images, sha256 in sw-description, cpio headers, signing, idempotence.

mod swu_common;

use adudiff_gen::recompress::{recompress_swu, ImageAction, SignatureAction};
use adudiff_gen::swu::cpio::{checksum, CpioArchive, CpioFormat};
use adudiff_gen::swu::description;
use adudiff_gen::tool::gzip::gunzip;
use adudiffapi::codec::{deflate_exact, find_zlib_level};
use adudiffapi::format::ZlibInit;
use swu_common::*;

struct Fixture {
    swu: Vec<u8>,
    rootfs: Vec<u8>,
    kernel: Vec<u8>,
    config: Vec<u8>,
}

fn fixture(format: CpioFormat, with_sig: bool) -> Fixture {
    let rootfs = text(1, 300_000);
    let rootfs_gz = foreign_gzip(&rootfs);
    let kernel = text(2, 50_001);
    let config = foreign_gzip(&text(3, 4000));
    let desc = sw_description(
        &[
            ("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&rootfs_gz)),
            ("vmlinuz", None, &sha256_hex(&kernel)),
        ],
        &[("config.tar.gz", &sha256_hex(&config))],
    );
    let mut members: Vec<(&str, &[u8])> = vec![("sw-description", desc.as_bytes())];
    if with_sig {
        members.push(("sw-description.sig", b"stale signature"));
    }
    members.push(("rootfs.ext4.gz", &rootfs_gz));
    members.push(("vmlinuz", &kernel));
    members.push(("config.tar.gz", &config));
    Fixture {
        swu: cpio(format, &members),
        rootfs,
        kernel,
        config,
    }
}

fn data<'a>(swu: &'a [u8], a: &CpioArchive, name: &str) -> &'a [u8] {
    let m = a.find(name).unwrap_or_else(|| panic!("{name} missing"));
    &swu[m.data_offset as usize..(m.data_offset + m.data_len) as usize]
}

fn signer(dir: &std::path::Path) -> String {
    let script = dir.join("sign.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\n{{ printf 'SIG:'; sha256sum \"$1\" | cut -c1-64; }} > \"$2\"\n",
            dir.join("calls.log").display()
        ),
    )
    .unwrap();
    format!("sh {}", script.display())
}

#[test]
fn recompresses_gzip_images_updates_hashes_and_signs() {
    for format in [CpioFormat::Crc, CpioFormat::Newc] {
        let f = fixture(format, true);
        let dir = tempfile::tempdir().unwrap();
        let (out, report) = recompress_swu(&f.swu, Some(&signer(dir.path()))).unwrap();
        assert!(report.changed);
        assert_eq!(report.signature, SignatureAction::Signed { added: false });
        assert!(
            matches!(report.images[0], (ref n, ImageAction::Recompressed { .. }) if n == "rootfs.ext4.gz")
        );
        assert!(
            matches!(report.images[1], (ref n, ImageAction::NotCompressed(_)) if n == "vmlinuz")
        );

        let a = CpioArchive::parse(&out).unwrap();
        assert_eq!(a.format, format);
        assert_eq!(out.len() % 512, 0);
        let names: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sw-description",
                "sw-description.sig",
                "rootfs.ext4.gz",
                "vmlinuz",
                "config.tar.gz",
                "TRAILER!!!"
            ]
        );
        // Every header is consistent: size and (crc format) checksum of its payload.
        for m in &a.members {
            let d = &out[m.data_offset as usize..(m.data_offset + m.data_len) as usize];
            let expected = if format == CpioFormat::Crc {
                checksum(d)
            } else {
                0
            };
            assert_eq!(m.header.check, expected, "{}", m.name);
            assert_eq!(m.header.namesize as usize, m.name.len() + 1);
        }
        // The image is the byte-exact zlib level 9 / memLevel 9 / OS 3 gzip of the same content.
        let gz = data(&out, &a, "rootfs.ext4.gz");
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
        assert_eq!(gunzip(gz).unwrap(), f.rootfs);
        assert_eq!(find_zlib_level(&f.rootfs, gz, ZlibInit::Gzip), Some(9));
        assert_eq!(gz, deflate_exact(&f.rootfs, ZlibInit::Gzip, 9).unwrap());
        // Uncompressed image and non-image file untouched.
        assert_eq!(data(&out, &a, "vmlinuz"), f.kernel);
        assert_eq!(data(&out, &a, "config.tar.gz"), f.config);
        // sw-description carries the new hashes; files entries are not images.
        let desc = std::str::from_utf8(data(&out, &a, "sw-description")).unwrap();
        let imgs = description::entries(desc).unwrap();
        assert_eq!(imgs[0].sha256.as_deref(), Some(&*sha256_hex(gz)));
        assert_eq!(imgs[1].sha256.as_deref(), Some(&*sha256_hex(&f.kernel)));
        assert_eq!(imgs[2].sha256.as_deref(), Some(&*sha256_hex(&f.config)));
        assert!(
            desc.contains("// test description"),
            "formatting and comments kept"
        );
        // The signing command got <path> <path>.sig and its output is the new .sig member.
        let log = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
        let args: Vec<&str> = log.split_whitespace().collect();
        assert_eq!(args.len(), 2);
        assert!(args[0].ends_with("/sw-description"));
        assert_eq!(args[1], format!("{}.sig", args[0]));
        let sig = data(&out, &a, "sw-description.sig");
        assert_eq!(
            sig,
            format!("SIG:{}\n", sha256_hex(desc.as_bytes())).as_bytes()
        );

        // Idempotent: a second run changes nothing (and re-signs to the same bytes).
        let (again, report2) = recompress_swu(&out, Some(&signer(dir.path()))).unwrap();
        assert!(again == out, "second recompression changed the archive");
        assert!(!report2.changed);
        assert_eq!(report2.images[0].1, ImageAction::AlreadyReproducible);
    }
}

#[test]
fn missing_signature_is_added_right_after_sw_description() {
    let f = fixture(CpioFormat::Crc, false);
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = recompress_swu(&f.swu, Some(&signer(dir.path()))).unwrap();
    assert_eq!(report.signature, SignatureAction::Signed { added: true });
    let a = CpioArchive::parse(&out).unwrap();
    assert_eq!(a.members[1].name, "sw-description.sig");
    assert!(data(&out, &a, "sw-description.sig").starts_with(b"SIG:"));
}

#[test]
fn without_signing_command_a_stale_signature_is_dropped() {
    let f = fixture(CpioFormat::Crc, true);
    let (out, report) = recompress_swu(&f.swu, None).unwrap();
    assert_eq!(report.signature, SignatureAction::RemovedStale);
    let a = CpioArchive::parse(&out).unwrap();
    assert!(a.find("sw-description.sig").is_none());
    // Once reproducible, nothing changes any more, so nothing needs re-signing.
    let (again, report2) = recompress_swu(&out, None).unwrap();
    assert_eq!(again, out);
    assert_eq!(report2.signature, SignatureAction::None);
}

#[test]
fn failing_signing_command_is_an_error() {
    let f = fixture(CpioFormat::Crc, true);
    let err = recompress_swu(&f.swu, Some("false")).unwrap_err();
    assert!(err.0.contains("signing command"), "{err}");
    let err = recompress_swu(&f.swu, Some("true")).unwrap_err();
    assert!(err.0.contains("did not write"), "{err}");
}

#[test]
fn declared_but_uncompressed_image_is_left_alone() {
    let raw = text(9, 10_000);
    let desc = sw_description(&[("fw.bin", Some("zlib"), "00")], &[]);
    let swu = cpio(
        CpioFormat::Newc,
        &[("sw-description", desc.as_bytes()), ("fw.bin", &raw)],
    );
    let (out, report) = recompress_swu(&swu, None).unwrap();
    assert!(
        matches!(&report.images[0].1, ImageAction::NotCompressed(why) if why.contains("not gzip"))
    );
    let a = CpioArchive::parse(&out).unwrap();
    assert_eq!(data(&out, &a, "fw.bin"), raw);
    let d = std::str::from_utf8(data(&out, &a, "sw-description")).unwrap();
    assert!(d.contains(&sha256_hex(&raw)));
}
