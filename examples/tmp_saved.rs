use roofline::graph::*;
fn main() {
    let m = roofline::spec::load_model("jit-b4").unwrap();
    let cfg = StepConfig {
        batch: 1,
        attention: AttentionImpl::Flash2,
        precision: Precision::Bf16,
        ..StepConfig::default()
    };
    let mut ops = Vec::new();
    build_step(&m, &cfg, &mut ops).unwrap();
    for o in ops.iter().filter(|o| o.phase == Phase::Forward) {
        if !matches!(o.layer, Layer::Blocks { .. }) {
            continue;
        }
        let one = [*o];
        let f = roofline::memory::activation_bytes(&one, Checkpointing::None, true).0;
        println!(
            "{:32} {:?} {:?} saved {:>10.0} fused {:>10.0} chained {:>10.0} written {:>10.0} {:?}",
            o.name, o.chain, o.kind, o.saved.0, f, o.chained_read.0, o.bytes_written.0, o.role
        );
    }
}
