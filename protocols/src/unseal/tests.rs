use super::*;

fn text(shares: &[UnsealShare]) -> Vec<String> {
    shares.iter().map(|s| s.encode().to_string()).collect()
}

#[test]
fn any_m_of_n_rebuilds_the_key() {
    let (key, shares) = generate(3, 5).unwrap();
    for a in 0..5 {
        for b in (a + 1)..5 {
            for c in (b + 1)..5 {
                let subset = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
                assert_eq!(combine(&subset).unwrap().expose(), key.expose());
            }
        }
    }
    assert_eq!(combine(&shares).unwrap().expose(), key.expose());
}

#[test]
fn m_minus_one_shares_fail_clearly() {
    let (_, shares) = generate(3, 5).unwrap();
    let err = combine(&shares[..2]).unwrap_err();
    assert!(
        matches!(err, ShareError::NotEnough { have: 2, need: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("2 of the 3"), "{err}");
}

#[test]
fn a_wrong_share_is_detected_and_named() {
    let (_, shares) = generate(2, 4).unwrap();
    let mut tampered = shares.clone();
    let mut value = *tampered[1].value();
    value[0] ^= 1;
    tampered[1] = UnsealShare::new(
        tampered[1].set_id(),
        2,
        tampered[1].index(),
        Zeroizing::new(value),
        *tampered[1].check(),
    );
    // Exactly the threshold: the key check fails, no suspect can be singled out.
    let err = combine(&tampered[..2]).unwrap_err();
    assert!(
        matches!(err, ShareError::WrongShare { ref suspects } if suspects.is_empty()),
        "{err}"
    );
    // More than the threshold: the odd one out is named.
    let err = combine(&tampered).unwrap_err();
    assert!(
        matches!(err, ShareError::WrongShare { ref suspects } if suspects == &[2]),
        "{err}"
    );
}

#[test]
fn shares_of_two_sets_do_not_mix() {
    let (_, a) = generate(2, 3).unwrap();
    let (_, b) = generate(2, 3).unwrap();
    let err = combine(&[a[0].clone(), b[1].clone()]).unwrap_err();
    assert!(matches!(err, ShareError::MixedSets { .. }), "{err}");
}

#[test]
fn duplicate_index_is_refused() {
    let (_, shares) = generate(2, 3).unwrap();
    let err = combine(&[shares[0].clone(), shares[0].clone()]).unwrap_err();
    assert!(
        matches!(err, ShareError::DuplicateIndex { index: 1 }),
        "{err}"
    );
}

#[test]
fn text_form_round_trips_and_rejects_corruption() {
    let (key, shares) = generate(2, 3).unwrap();
    let lines = text(&shares);
    let parsed: Vec<UnsealShare> = lines
        .iter()
        .map(|l| UnsealShare::parse(l).unwrap())
        .collect();
    assert_eq!(combine(&parsed).unwrap().expose(), key.expose());
    assert!(
        UnsealShare::parse(&format!("{}\n", lines[0])).is_ok(),
        "a trailing newline is fine"
    );
    let mut corrupt = lines[0].clone();
    corrupt.truncate(corrupt.len() - 3);
    assert!(UnsealShare::parse(&corrupt).is_err());
    assert!(UnsealShare::parse("").is_err());
    assert!(UnsealShare::parse("cryptoutil-unseal-v1.zz.2.1.AAAA.AAAA").is_err());
    assert!(UnsealShare::parse(&lines[0].replace("-v1.", "-v9.")).is_err());
}

#[test]
fn debug_never_prints_share_bytes() {
    let (key, shares) = generate(1, 1).unwrap();
    assert_eq!(format!("{key:?}"), "UnsealKey(<redacted>)");
    assert!(format!("{:?}", shares[0]).contains("<redacted>"));
}

#[test]
fn bad_thresholds_are_refused() {
    assert!(generate(0, 3).is_err());
    assert!(generate(4, 3).is_err());
}

proptest::proptest! {
    #[test]
    fn split_then_combine_is_identity(key in proptest::array::uniform32(0u8..), m in 1u8..6, extra in 0u8..4) {
        let shares = split(&key, [7; 8], m, m + extra).unwrap();
        let rebuilt = combine(&shares[usize::from(extra)..]).unwrap();
        proptest::prop_assert_eq!(rebuilt.expose(), &key);
    }
}
