//! Experiment: tract speed per text for symbolic vs concrete shapes.
use std::collections::HashMap;
use std::time::Instant;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let mode = std::env::args().nth(1).unwrap_or("sym".into());
    let mut model = tract_onnx::onnx().model_for_path("model/out/real/model.onnx")?;
    let b = model.sym("B");
    let s = model.sym("S");
    for i in 0..3 {
        model = model.with_input_fact(i, i64::fact([b.to_dim(), s.to_dim()]).into())?;
    }
    let typed = model.into_typed()?.into_decluttered()?;
    let mut subs = HashMap::new();
    subs.insert(b.clone(), TDim::from(1i64));
    if mode == "conc" {
        subs.insert(s.clone(), TDim::from(54i64));
    }
    let rss = || std::fs::read_to_string("/proc/self/statm").ok().and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse::<u64>().ok())).unwrap_or(0) * 4096 / (1 << 20);
    let plan = if mode == "postsym" || mode == "postsym-reopt" {
        let mut b1 = HashMap::new();
        b1.insert(b.clone(), TDim::from(1i64));
        let opt = typed.set_symbols(&b1)?.into_optimized()?;
        println!("rss after symbolic plan {}", rss());
        let mut plans = vec![];
        for len in [40i64, 48, 54] {
            let mut s1 = HashMap::new();
            s1.insert(s.clone(), TDim::from(len));
            let c = opt.set_symbols(&s1)?;
            let c = if mode == "postsym-reopt" { c.into_optimized()? } else { c };
            plans.push(c.into_runnable()?);
        }
        println!("rss after 3 derived plans {}", rss());
        plans.pop().unwrap()
    } else {
        typed.set_symbols(&subs)?.into_optimized()?.into_runnable()?
    };
    let (bb, ss) = (1usize, 54usize);
    let ids = Tensor::from_shape::<i64>(&[bb, ss], &vec![1000i64; bb * ss])?;
    let mask = Tensor::from_shape::<i64>(&[bb, ss], &vec![1i64; bb * ss])?;
    let tt = Tensor::from_shape::<i64>(&[bb, ss], &vec![0i64; bb * ss])?;
    let t0 = Instant::now();
    for _ in 0..400 {
        plan.run(tvec![ids.clone().into(), mask.clone().into(), tt.clone().into()])?;
    }
    println!("{mode}: {:.2} ms/text", t0.elapsed().as_secs_f64() * 1000.0 / 400.0);
    Ok(())
}
