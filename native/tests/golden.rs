//! Golden vectors shared with pytest (tests/golden.json, written by tests/gen_golden.py from the
//! Python backend). Pure Rust: no Python needed.

use _gaia_native::hashing as h;
use _gaia_native::scheduler::Scheduler;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read golden.json"))
        .expect("parse golden.json")
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn leaf(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| ((7 * i + j) % 251) as u8).collect()
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn blake3_vectors() {
    let g = golden();
    for v in g["blake3"].as_array().unwrap() {
        let data = pattern(v["len"].as_u64().unwrap() as usize);
        let want = v["hash"].as_str().unwrap();
        assert_eq!(h::content_id(&data), want, "len {}", data.len());
        assert_eq!(hex(&h::digest(&data)), want);
    }
    for v in g["blake3_text"].as_array().unwrap() {
        assert_eq!(
            h::content_id(v["text"].as_str().unwrap().as_bytes()),
            v["hash"].as_str().unwrap()
        );
    }
}

#[test]
fn merkle_vectors() {
    let g = golden();
    for case in g["merkle"].as_array().unwrap() {
        let lens: Vec<usize> = case["leaf_lens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let leaves: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &n)| leaf(i, n)).collect();
        assert_eq!(
            hex(&h::merkle_root(&leaves)),
            case["root"].as_str().unwrap(),
            "leaf_lens {lens:?}"
        );
    }
}

fn opt_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

#[test]
fn scheduler_scenarios() {
    let g = golden();
    for sc in g["scheduler"].as_array().unwrap() {
        let name = sc["name"].as_str().unwrap();
        let mut s: Scheduler = Scheduler::new();
        let results = sc["results"].as_array().unwrap();
        for (op, want) in sc["ops"].as_array().unwrap().iter().zip(results) {
            let op = op.as_array().unwrap();
            let a = &op[1..];
            let got: Value = match op[0].as_str().unwrap() {
                "push" => {
                    s.push(
                        a[0].as_str().unwrap(),
                        a[1].as_i64().unwrap(),
                        opt_f64(&a[2]),
                        a[3].as_str().unwrap(),
                        a[4].as_f64().unwrap(),
                    )
                    .unwrap();
                    Value::Null
                }
                "push_many" => {
                    let items = a[0]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| {
                            let t = t.as_array().unwrap();
                            (
                                t[0].as_str().unwrap().to_owned(),
                                t[1].as_i64().unwrap(),
                                opt_f64(&t[2]),
                                t[3].as_str().unwrap().to_owned(),
                            )
                        })
                        .collect();
                    s.push_many(items).unwrap();
                    Value::Null
                }
                "pop" => s.pop().map_or(Value::Null, Value::from),
                "pop_many" => Value::from(s.pop_many(a[0].as_u64().unwrap() as usize)),
                "remove" => Value::from(s.remove(a[0].as_str().unwrap())),
                "contains" => Value::from(s.contains(a[0].as_str().unwrap())),
                "len" => Value::from(s.len()),
                "pop_expired" => Value::from(s.pop_expired(a[0].as_f64().unwrap())),
                "set_share" => {
                    s.set_share(a[0].as_str().unwrap(), a[1].as_f64().unwrap())
                        .unwrap();
                    Value::Null
                }
                "served" => Value::from(s.served(a[0].as_str().unwrap())),
                other => panic!("unknown op {other}"),
            };
            s.check_invariants();
            let same = match (got.as_f64(), want.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => &got == want,
            };
            assert!(same, "scenario {name}: {op:?} gave {got}, golden {want}");
        }
    }
}
