//! Wall time of `AutoModelForCausalLM::from_gguf`, three loads in one process, and the
//! process's resident memory after each (docs/benchmarks.md, the huge-pages paragraph of the
//! default-speed section):
//!
//!     cargo run --release --example load_time -- path/to/SmolLM2-135M-Instruct.Q4_1.gguf
use massivetext::prelude::*;

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: load_time MODEL.gguf (tests/smollm2 says where .ci/reference puts it)")?;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let model = AutoModelForCausalLM::from_gguf(&path, &candle_core::Device::Cpu)?;
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS")).map(String::from))
            .unwrap_or_default();
        println!("load {:.2} s; {rss}", t.elapsed().as_secs_f64());
        drop(model);
    }
    Ok(())
}
