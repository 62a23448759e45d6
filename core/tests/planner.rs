//! The planner against machines from a CPU-only laptop to a cluster: what it recommends, and
//! rules that must hold for any machine (property tests).
#![allow(clippy::unwrap_used, reason = "test helpers too fail the test on the first unexpected error")]

use altiplano_core::catalog::{Catalog, Quant};
use altiplano_core::engine::{EngineKind, KvPrecision};
use altiplano_core::hardware::{Cpu, Gpu, GpuVendor, HardwareProfile, Os};
use altiplano_core::planner::{
    cpu_memory_estimate, cpu_memory_estimate_on, default_context, engine_for, gpu_layers as gpu_layers_for, plan,
    plan_measured, Backend, Fit, Measured, Placement, PlanOptions, Preference, LONG_CONTEXT,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const GB: u64 = 1_000_000_000;

fn cpu(threads: u32) -> Cpu {
    Cpu { name: "test CPU".into(), cores: threads / 2 + 1, threads, features: vec!["avx2".into(), "fma".into()] }
}

/// A PC with `ram_gib` of RAM (three quarters available) and the given GPUs.
fn pc(ram_gib: u64, threads: u32, gpus: Vec<Gpu>) -> HardwareProfile {
    HardwareProfile {
        os: Os::Linux,
        cpu: cpu(threads),
        ram_bytes: ram_gib * GIB,
        ram_available_bytes: ram_gib * GIB / 4 * 3,
        disk_free_bytes: 2000 * GB,
        gpus,
        nodes: 1,
    }
}

fn nvidia(name: &str, memory_gib: u64, cc: &str, count: usize) -> Vec<Gpu> {
    (0..count)
        .map(|_| Gpu {
            vendor: GpuVendor::Nvidia,
            name: name.into(),
            memory_bytes: memory_gib * GIB,
            memory_free_bytes: memory_gib * GIB - GIB / 2,
            compute_capability: Some(cc.into()),
        })
        .collect()
}

fn mac(chip: &str, ram_gib: u64) -> HardwareProfile {
    let budget = altiplano_core::hardware::apple_metal_budget(ram_gib * GIB);
    HardwareProfile {
        os: Os::Macos,
        cpu: Cpu { name: chip.into(), cores: 8, threads: 8, features: vec!["neon".into()] },
        ram_bytes: ram_gib * GIB,
        ram_available_bytes: ram_gib * GIB / 4 * 3,
        disk_free_bytes: 1000 * GB,
        gpus: vec![Gpu {
            vendor: GpuVendor::Apple,
            name: chip.into(),
            memory_bytes: budget,
            memory_free_bytes: budget.min(ram_gib * GIB / 4 * 3),
            compute_capability: None,
        }],
        nodes: 1,
    }
}

/// Checks the recommendation: model, quant, backend and fit (None when nothing should fit).
fn check(profile: &HardwareProfile, expected: Option<(&str, &str, Backend, Fit)>) {
    let catalog = Catalog::builtin().unwrap();
    let plan = plan(profile, &catalog, PlanOptions::default());
    let got = plan.recommended.as_ref().map(|c| (c.model.as_str(), c.quant.as_str(), c.backend, c.fit));
    assert_eq!(got, expected, "explanation: {:?}", plan.recommended.as_ref().map(|c| &c.explanation));
    match &plan.recommended {
        Some(c) => {
            assert!(plan.reason_if_none.is_none());
            assert!(c.max_context_tokens >= c.context_tokens, "{c:?}");
            assert!(!c.explanation.is_empty());
        }
        None => assert!(plan.reason_if_none.as_deref().is_some_and(|r| r.contains("would run it")), "{plan:?}"),
    }
}

/// GGUF files run on llama.cpp, which reads the token embedding as stored; on mistral.rs it is
/// dequantized to F32 at load (2.1 GB for 8B, beside 4.9 GB of Q4_K_M weights), which the
/// planner counts when a GGUF file is planned there.
#[test]
fn only_mistral_rs_unpacks_a_gguf_models_embedding_to_f32() {
    let catalog = Catalog::builtin().unwrap();
    let model = catalog.model("llama-3.1-8b-instruct").unwrap();
    let variant = |q: Quant| model.variants.iter().find(|v| v.quant == q).unwrap();
    let embedding = 128_256 * 4096 * 4;
    let gguf = variant(Quant::Q8_0);
    assert_eq!(engine_for(gguf, 1), EngineKind::LlamaCpp);
    assert_eq!(engine_for(gguf, 2), EngineKind::MistralRs, "only mistral.rs spans nodes");
    assert_eq!(engine_for(variant(Quant::Bf16), 1), EngineKind::MistralRs);
    let on_llama = cpu_memory_estimate(model, gguf, 0);
    let on_mistral = cpu_memory_estimate_on(model, gguf, EngineKind::MistralRs, 0);
    assert!(on_llama < model.weights_bytes(gguf) + embedding, "{on_llama}");
    assert!(on_mistral >= on_llama + embedding, "{on_mistral} against {on_llama}");
    // On a GPU: a 12 GB card holds 8B Q8_0 (8.5 GB and its KV cache) on llama.cpp, where
    // mistral.rs's 2.1 GB F32 copy left room only for Q6_K.
    let card = pc(32, 16, nvidia("NVIDIA GeForce RTX 3060", 12, "8.6", 1));
    let plan = plan(&card, &catalog, PlanOptions::default());
    let row = |q: Quant| plan.candidates.iter().find(|c| c.model == model.id && c.quant == q).unwrap();
    assert_eq!((row(Quant::Q8_0).fit, row(Quant::Q8_0).engine), (Fit::Gpu, EngineKind::LlamaCpp));
    assert!(!row(Quant::Q8_0).explanation.contains("F32"), "{}", row(Quant::Q8_0).explanation);
    assert!(row(Quant::Q8_0).explanation.contains("Runs on llama.cpp"), "{}", row(Quant::Q8_0).explanation);
}

#[test]
fn cpu_only_laptops() {
    check(&pc(8, 8, vec![]), None);
    check(&pc(16, 8, vec![]), Some(("llama-3.1-8b-instruct", "Q6_K", Backend::Cpu, Fit::Cpu)));
    check(&pc(32, 16, vec![]), Some(("llama-3.1-8b-instruct", "Q6_K", Backend::Cpu, Fit::Cpu)));
}

#[test]
fn apple_silicon() {
    check(&mac("Apple M1", 8), None);
    // Q8_0 (8.5 GB) fits beside its KV cache: llama.cpp reads the embedding as stored.
    check(&mac("Apple M1", 16), Some(("llama-3.1-8b-instruct", "Q8_0", Backend::Metal, Fit::Gpu)));
    check(&mac("Apple M2 Pro", 32), Some(("llama-3.1-8b-instruct", "BF16", Backend::Metal, Fit::Gpu)));
    check(&mac("Apple M3 Max", 128), Some(("llama-3.1-70b-instruct", "Q6_K", Backend::Metal, Fit::Gpu)));
}

#[test]
fn consumer_gpus() {
    check(
        &pc(32, 16, nvidia("NVIDIA GeForce RTX 3060", 12, "8.6", 1)),
        Some(("llama-3.1-8b-instruct", "Q8_0", Backend::Cuda, Fit::Gpu)),
    );
    check(
        &pc(64, 16, nvidia("NVIDIA GeForce RTX 4090", 24, "8.9", 1)),
        Some(("llama-3.1-8b-instruct", "BF16", Backend::Cuda, Fit::Gpu)),
    );
    // 70B Q4_K_M, most of its layers on the two GPUs and the rest on the CPU, decodes at about
    // 7 tokens/s on llama.cpp (no F32 embedding crowding the first GPU): usable, so the larger
    // model wins.
    check(
        &pc(64, 16, nvidia("NVIDIA GeForce RTX 3090", 24, "8.6", 2)),
        Some(("llama-3.1-70b-instruct", "Q4_K_M", Backend::Cuda, Fit::Partial)),
    );
    check(
        &pc(128, 16, nvidia("NVIDIA RTX A6000", 48, "8.6", 1)),
        Some(("llama-3.1-70b-instruct", "Q4_K_M", Backend::Cuda, Fit::Gpu)),
    );
}

#[test]
fn data_centre_gpus() {
    check(
        &pc(128, 32, nvidia("NVIDIA A100-PCIE-40GB", 40, "8.0", 1)),
        Some(("llama-3.1-70b-instruct", "Q4_K_M", Backend::Cuda, Fit::Partial)),
    );
    check(
        &pc(256, 32, nvidia("NVIDIA A100 80GB PCIe", 80, "8.0", 1)),
        Some(("llama-3.1-70b-instruct", "Q8_0", Backend::Cuda, Fit::Gpu)),
    );
    check(
        &pc(256, 64, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 1)),
        Some(("llama-3.1-70b-instruct", "FP8", Backend::Cuda, Fit::Gpu)),
    );
    check(
        &pc(512, 64, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 2)),
        Some(("llama-3.1-70b-instruct", "BF16", Backend::Cuda, Fit::Gpu)),
    );
    check(
        &pc(1024, 128, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 4)),
        Some(("llama-3.1-405b-instruct", "Q5_K_M", Backend::Cuda, Fit::Gpu)),
    );
    check(
        &pc(2048, 128, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 8)),
        Some(("llama-3.1-405b-instruct", "FP8", Backend::Cuda, Fit::Gpu)),
    );
    check(
        &pc(2048, 128, nvidia("NVIDIA H200", 141, "9.0", 8)),
        Some(("llama-3.1-405b-instruct", "BF16", Backend::Cuda, Fit::Gpu)),
    );
}

#[test]
fn a_real_h200_as_detected() {
    let profile = HardwareProfile::from_json(include_str!("fixtures/hardware/h200-detected.json")).unwrap();
    check(&profile, Some(("llama-3.1-70b-instruct", "FP8", Backend::Cuda, Fit::Gpu)));
}

#[test]
fn a_cluster_runs_405b_in_bf16_and_says_how_to_set_up_each_node() {
    let mut cluster = pc(2048, 128, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 8));
    cluster.nodes = 2;
    check(&cluster, Some(("llama-3.1-405b-instruct", "BF16", Backend::Cuda, Fit::Gpu)));
    let plan = plan(&cluster, &Catalog::builtin().unwrap(), PlanOptions::default());
    let best = plan.recommended.unwrap();
    assert_eq!(best.placement, Placement::TensorParallel { gpus_per_node: 8, nodes: 2 });
    let settings = best.node_settings.join("\n");
    for needed in [
        "MISTRALRS_MN_GLOBAL_WORLD_SIZE=16",
        "MISTRALRS_MN_LOCAL_WORLD_SIZE=8",
        "MISTRALRS_MN_HEAD_NUM_WORKERS=1",
        "MISTRALRS_MN_WORKER_ID=0",
        "MISTRALRS_MN_WORKER_SERVER_ADDR",
        "MISTRALRS_MN_HEAD_PORT",
    ] {
        assert!(settings.contains(needed), "{needed} missing from {settings}");
    }
}

#[test]
fn a_cluster_plan_says_how_to_serve_it_with_vllm_and_sglang() {
    let mut cluster = pc(2048, 128, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 8));
    cluster.nodes = 2;
    let catalog = Catalog::builtin().unwrap();
    let options = PlanOptions { context_tokens: 32768, prefer: Preference::Quality };
    let plan = plan(&cluster, &catalog, options);
    let best = plan.recommended.unwrap();
    assert_eq!((best.model.as_str(), best.quant), ("llama-3.1-405b-instruct", Quant::Bf16));
    let lines = best.cluster_commands.join("\n");
    let expected = [
        "every node: export HF_TOKEN=<a Hugging Face token with access to meta-llama/Llama-3.1-405B-Instruct>",
        "vLLM, head node: ray start --head --port=6379",
        "vLLM, worker node 1: ray start --address=<head address>:6379",
        "vLLM, head node: vllm serve meta-llama/Llama-3.1-405B-Instruct --tensor-parallel-size 8 --pipeline-parallel-size 2 --max-model-len 32768 --host 0.0.0.0 --port 8000 --api-key <a key of your choosing>",
        "SGLang, head node: python -m sglang.launch_server --model-path meta-llama/Llama-3.1-405B-Instruct --tp 16 --nnodes 2 --node-rank 0 --dist-init-addr <head address>:50000 --context-length 32768 --host 0.0.0.0 --port 30000 --api-key <a key of your choosing>",
        "SGLang, worker node 1: python -m sglang.launch_server --model-path meta-llama/Llama-3.1-405B-Instruct --tp 16 --nnodes 2 --node-rank 1 --dist-init-addr <head address>:50000 --context-length 32768 --host 0.0.0.0 --port 30000 --api-key <a key of your choosing>",
    ];
    assert_eq!(best.cluster_commands, expected, "{lines}");

    // FP8 on four nodes of four: vLLM's and SGLang's own FP8 of the same weights, every rank.
    let mut four = pc(1024, 64, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 4));
    four.nodes = 4;
    let plan = altiplano_core::planner::plan(&four, &catalog, PlanOptions::default());
    let fp8 = plan
        .candidates
        .iter()
        .find(|c| c.model == "llama-3.1-405b-instruct" && c.quant == Quant::Fp8 && c.fit == Fit::Gpu)
        .expect("405B FP8 fits 16 H100s");
    let lines = fp8.cluster_commands.join("\n");
    assert!(lines.contains("--tensor-parallel-size 4 --pipeline-parallel-size 4"), "{lines}");
    assert_eq!(lines.matches("--quantization fp8").count(), 5, "vLLM once, SGLang on each of 4 nodes: {lines}");
    assert_eq!(lines.matches("ray start --address").count(), 3, "{lines}");
    for rank in 0..4 {
        assert!(lines.contains(&format!("--tp 16 --nnodes 4 --node-rank {rank} ")), "rank {rank}: {lines}");
    }

    // GGUF files across nodes run on mistral.rs only; one machine needs no cluster lines.
    assert!(plan.candidates.iter().filter(|c| c.quant == Quant::Q4KM).all(|c| c.cluster_commands.is_empty()));
    let one = pc(2048, 128, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 8));
    let plan = altiplano_core::planner::plan(&one, &catalog, PlanOptions::default());
    assert!(plan.candidates.iter().all(|c| c.cluster_commands.is_empty()));
}

#[test]
fn fp8_only_on_gpus_with_native_fp8() {
    let catalog = Catalog::builtin().unwrap();
    let a100 = pc(256, 32, nvidia("NVIDIA A100 80GB PCIe", 80, "8.0", 1));
    let plan = plan(&a100, &catalog, PlanOptions::default());
    assert!(
        plan.candidates.iter().filter(|c| c.quant == Quant::Fp8).all(|c| c.fit == Fit::TooLarge),
        "no FP8 on compute capability 8.0"
    );
    let laptop = pc(64, 16, vec![]);
    let plan = altiplano_core::planner::plan(&laptop, &catalog, PlanOptions::default());
    assert!(plan.candidates.iter().filter(|c| c.quant == Quant::Fp8).all(|c| c.fit == Fit::TooLarge));
}

#[test]
fn gguf_gets_its_whole_context_on_llama_cpp_and_is_capped_on_mistral_rs() {
    let catalog = Catalog::builtin().unwrap();
    let profile = pc(256, 64, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 1));
    let long = PlanOptions { context_tokens: 32768, prefer: Preference::Quality };
    let plan_one = plan(&profile, &catalog, long);
    let gguf =
        plan_one.candidates.iter().find(|c| c.model == "llama-3.1-8b-instruct" && c.quant == Quant::Q4KM).unwrap();
    assert_eq!((gguf.engine, gguf.context_tokens), (EngineKind::LlamaCpp, 32768));
    assert!(gguf.max_context_tokens > 32768, "an 80 GB GPU holds more than 32k of 8B context");
    assert!(gguf.meets_requested_context);
    // Across two nodes, only mistral.rs runs it, and its GGUF loader lacks Llama 3.1's RoPE
    // scaling: capped, and the explanation says why.
    let cluster = HardwareProfile { nodes: 2, ..profile };
    let plan_two = plan(&cluster, &catalog, long);
    let gguf =
        plan_two.candidates.iter().find(|c| c.model == "llama-3.1-8b-instruct" && c.quant == Quant::Q4KM).unwrap();
    assert_eq!((gguf.engine, gguf.context_tokens, gguf.max_context_tokens), (EngineKind::MistralRs, 8192, 8192));
    assert!(gguf.explanation.contains("capped at 8192"), "{}", gguf.explanation);
    assert!(!gguf.meets_requested_context);
}

#[test]
fn the_default_context_is_what_the_recommendation_holds() {
    let catalog = Catalog::builtin().unwrap();
    let at = |profile: &HardwareProfile, context_tokens| {
        plan(profile, &catalog, PlanOptions { context_tokens, prefer: Preference::Quality }).recommended
    };
    // This CI machine's kind (24 GiB, no GPU): the 8B model holds 32,768 tokens in its best
    // quality that fits, and that is where the page opens (not at 131,072, where only an 8-bit
    // KV cache fits).
    let ci = pc(24, 2, vec![]);
    let context = default_context(&ci, &catalog, Preference::Quality, &[]);
    assert_eq!(context, LONG_CONTEXT);
    let best = at(&ci, context).expect("a recommendation at the default context");
    assert_eq!(best.model, "llama-3.1-8b-instruct");
    assert!(best.max_context_tokens >= context && best.meets_requested_context);

    // Laptops: the page opens at the largest power of two the recommendation holds (less than
    // twice that, unless capped at 32K), or, on 8 GiB where nothing holds 8,192 tokens, at the
    // shorter step where the 8B model fits.
    for ram in [8, 12, 16] {
        let laptop = pc(ram, 8, vec![]);
        let context = default_context(&laptop, &catalog, Preference::Quality, &[]);
        let best = at(&laptop, context).unwrap_or_else(|| panic!("{ram} GiB: nothing at {context}"));
        assert!(context.is_power_of_two() && (2048..=LONG_CONTEXT).contains(&context), "{ram} GiB: {context}");
        assert!(best.max_context_tokens >= context, "{ram} GiB: {best:?}");
        if (8192..LONG_CONTEXT).contains(&context) {
            assert!(best.max_context_tokens < 2 * context, "{ram} GiB: {context} for {best:?}");
        }
        if at(&laptop, 8192).is_none() {
            assert!(context < 8192, "{ram} GiB: {context}");
        }
    }
    assert!(default_context(&pc(8, 8, vec![]), &catalog, Preference::Quality, &[]) < 8192);

    // Where nothing fits at all, the default stays 8,192 and the plan says why.
    let tiny = pc(2, 2, vec![]);
    assert_eq!(default_context(&tiny, &catalog, Preference::Quality, &[]), 8192);
    assert!(at(&tiny, 8192).is_none());

    // A multi-GPU workstation keeps its large model (405B on llama.cpp, its layers shared over
    // the four GPUs) at a context that variant holds.
    let h100s = pc(512, 64, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 4));
    let base = at(&h100s, 8192).unwrap();
    assert_eq!(base.model, "llama-3.1-405b-instruct");
    let context = default_context(&h100s, &catalog, Preference::Quality, &[]);
    assert!(context >= 8192 && context.is_power_of_two(), "{context}");
    let opened = at(&h100s, context).unwrap();
    assert_eq!(opened.model, base.model);
    assert!(opened.max_context_tokens >= context, "{opened:?}");
    // With more memory per GPU the same model gets the long context beside it.
    let h200s = pc(1024, 64, nvidia("NVIDIA H200", 141, "9.0", 4));
    let context = default_context(&h200s, &catalog, Preference::Quality, &[]);
    assert_eq!(context, LONG_CONTEXT);
    assert_eq!(at(&h200s, context).unwrap().model, "llama-3.1-405b-instruct");
}

#[test]
fn an_eight_bit_kv_cache_only_where_sixteen_bits_do_not_fit() {
    let catalog = Catalog::builtin().unwrap();
    let ci = pc(24, 2, vec![]);
    let short = plan(&ci, &catalog, PlanOptions { context_tokens: 8192, prefer: Preference::Quality });
    assert!(short.candidates.iter().all(|c| c.kv_precision == KvPrecision::F16), "8,192 tokens fit in 16 bits");
    // At 131,072 tokens the 8B model's 16-bit cache (16 GiB) does not fit beside its weights in
    // 24 GiB; in 8 bits (8.5 GiB) it does, on llama.cpp, and the plan says so.
    let long = plan(&ci, &catalog, PlanOptions { context_tokens: 131_072, prefer: Preference::Quality });
    let best = long.recommended.expect("8B with an 8-bit KV cache");
    assert_eq!(
        (best.model.as_str(), best.engine, best.kv_precision),
        ("llama-3.1-8b-instruct", EngineKind::LlamaCpp, KvPrecision::Q8)
    );
    assert!(best.explanation.contains("8 bits (q8_0)"), "{}", best.explanation);
    let kv: u64 = best.devices.iter().map(|d| d.kv_cache_bytes).sum();
    let f16 = catalog.model("llama-3.1-8b-instruct").unwrap().kv_bytes_per_token() * 131_072;
    assert_eq!(kv, f16 / 64 * 34);
    assert!(best.devices.iter().all(|d| d.weights_bytes + d.kv_cache_bytes + d.overhead_bytes <= d.budget_bytes));
    // mistral.rs keeps a 16-bit cache: a safetensors variant never gets q8_0.
    assert!(long
        .candidates
        .iter()
        .filter(|c| c.engine == EngineKind::MistralRs)
        .all(|c| c.kv_precision == KvPrecision::F16));
}

#[test]
fn a_longer_context_needs_more_memory_and_can_change_the_answer() {
    let catalog = Catalog::builtin().unwrap();
    let h100 = pc(256, 64, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 1));
    let short_plan = plan(&h100, &catalog, PlanOptions { context_tokens: 4096, prefer: Preference::Quality });
    let long = plan(&h100, &catalog, PlanOptions { context_tokens: 131072, prefer: Preference::Quality });
    let kv = |p: &altiplano_core::planner::Plan| {
        p.recommended.as_ref().unwrap().devices.iter().map(|d| d.kv_cache_bytes).sum::<u64>()
    };
    let short = short_plan.recommended.as_ref().unwrap();
    let long_best = long.recommended.as_ref().unwrap();
    assert_eq!((short.model.as_str(), short.quant, short.fit), ("llama-3.1-70b-instruct", Quant::Fp8, Fit::Gpu));
    // 70B at 128k needs 40 GiB of KV cache on top of its weights: it no longer fits one H100,
    // and runs split with the CPU, in GGUF on llama.cpp (FP8 is GPU-only).
    assert_eq!(
        (long_best.model.as_str(), long_best.quant, long_best.fit, long_best.engine),
        ("llama-3.1-70b-instruct", Quant::Q8_0, Fit::Partial, EngineKind::LlamaCpp)
    );
    assert!(kv(&long) > kv(&short_plan));
}

#[test]
fn speed_preference_picks_the_fastest_variant_of_the_same_model() {
    let catalog = Catalog::builtin().unwrap();
    let rtx = pc(64, 16, nvidia("NVIDIA GeForce RTX 4090", 24, "8.9", 1));
    let fast =
        plan(&rtx, &catalog, PlanOptions { context_tokens: 8192, prefer: Preference::Speed }).recommended.unwrap();
    assert_eq!((fast.model.as_str(), fast.quant), ("llama-3.1-8b-instruct", Quant::Q4KM));
}

fn arb_profile() -> impl Strategy<Value = HardwareProfile> {
    let gpu = (
        prop::sample::select(vec![
            ("NVIDIA H100 80GB HBM3", "9.0"),
            ("NVIDIA GeForce RTX 3090", "8.6"),
            ("NVIDIA A100 80GB PCIe", "8.0"),
            ("NVIDIA GeForce RTX 4090", "8.9"),
        ]),
        4u64..200,
    );
    (4u64..2048, 2u32..256, prop::option::of((gpu, 1usize..9)), 1u32..3).prop_map(|(ram, threads, gpus, nodes)| {
        let gpus = gpus.map(|(((name, cc), mem), n)| nvidia(name, mem, cc, n)).unwrap_or_default();
        let mut p = pc(ram, threads, gpus);
        p.nodes = if p.gpus.is_empty() { 1 } else { nodes };
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_candidate_exceeds_any_device_budget(profile in arb_profile(), context in 512u32..131072) {
        let catalog = Catalog::builtin().unwrap();
        let plan = plan(&profile, &catalog, PlanOptions { context_tokens: context, prefer: Preference::Quality });
        for c in plan.candidates.iter().filter(|c| c.fit != Fit::TooLarge) {
            for d in &c.devices {
                prop_assert!(d.weights_bytes + d.kv_cache_bytes + d.overhead_bytes <= d.budget_bytes, "{} {} over budget on {}: {:?}", c.model, c.quant.as_str(), d.device, d);
            }
            prop_assert!(c.max_context_tokens >= c.context_tokens, "{:?}", c);
        }
    }

    #[test]
    fn more_memory_never_recommends_a_smaller_model(profile in arb_profile(), extra_ram in 0u64..512, extra_gpu in 0u64..80) {
        let catalog = Catalog::builtin().unwrap();
        let params = |p: &HardwareProfile| plan(p, &catalog, PlanOptions::default())
            .recommended
            .map(|c| catalog.model(&c.model).unwrap().parameters)
            .unwrap_or(0);
        let mut bigger = profile.clone();
        bigger.ram_bytes += extra_ram * GIB;
        bigger.ram_available_bytes += extra_ram * GIB;
        for g in &mut bigger.gpus {
            g.memory_bytes += extra_gpu * GIB;
            g.memory_free_bytes += extra_gpu * GIB;
        }
        prop_assert!(params(&bigger) >= params(&profile));
    }
}

/// Found by `more_memory_never_recommends_a_smaller_model`: three GPUs that hold every layer of
/// a model, but cannot run it tensor-parallel (three is not a power of two), must still run it.
/// As each GPU grows, the recommendation goes from split with the CPU to all on the GPUs, and
/// never to a smaller model.
#[test]
fn layers_spread_over_a_non_power_of_two_of_gpus_fit_without_the_cpu() {
    let catalog = Catalog::builtin().unwrap();
    let recommended: Vec<(u64, Fit)> = (80..=96)
        .map(|gib| {
            let rec =
                plan(&pc(20, 64, nvidia("NVIDIA H100 80GB HBM3", gib, "9.0", 3)), &catalog, PlanOptions::default())
                    .recommended
                    .unwrap();
            (catalog.model(&rec.model).unwrap().parameters, rec.fit)
        })
        .collect();
    // For the largest model that runs, more memory per GPU moves it from split to all-GPU.
    let largest = recommended.iter().map(|(params, _)| *params).max().unwrap();
    let fits: Vec<Fit> = recommended.iter().filter(|(p, _)| *p == largest).map(|(_, fit)| *fit).collect();
    let whole = fits.iter().position(|fit| *fit == Fit::Gpu).expect("all layers on the three GPUs");
    assert!(whole > 0 && fits[..whole].iter().all(|f| *f == Fit::Partial), "{recommended:?}");
    assert!(fits[whole..].iter().all(|f| *f == Fit::Gpu), "{recommended:?}");
    assert!(recommended.windows(2).all(|w| w[1].0 >= w[0].0), "never a smaller model: {recommended:?}");
}

#[test]
fn when_nothing_is_recommended_the_reason_matches_the_cause() {
    let catalog = Catalog::builtin().unwrap();
    // Too little memory for the KV cache of the context asked for: says how much it needs.
    let laptop = pc(16, 8, vec![]);
    let long = plan(&laptop, &catalog, PlanOptions { context_tokens: 131072, prefer: Preference::Quality });
    assert!(long.recommended.is_none());
    let reason = long.reason_if_none.unwrap();
    assert!(reason.contains("131072 tokens of context") && reason.contains("would run it"), "{reason}");
    // At the default context, the same laptop runs 8B.
    let short = plan(&laptop, &catalog, PlanOptions::default());
    assert_eq!(short.recommended.map(|c| c.model).as_deref(), Some("llama-3.1-8b-instruct"));
    // On a cluster GGUF runs on mistral.rs, capped below a long context: the reason says so.
    let nodes = HardwareProfile { nodes: 2, ..pc(64, 16, nvidia("NVIDIA GeForce RTX 4090", 24, "8.9", 1)) };
    let capped = plan(&nodes, &catalog, PlanOptions { context_tokens: 131072, prefer: Preference::Quality });
    if let Some(reason) = capped.reason_if_none {
        assert!(reason.contains("holds 8192 tokens at most") || reason.contains("would run it"), "{reason}");
    }
    // Nothing fits at all: says what would.
    let tiny = plan(&pc(4, 4, vec![]), &catalog, PlanOptions::default());
    assert!(tiny.reason_if_none.unwrap().contains("would run it"));
}

#[test]
fn measured_figures_replace_estimates_and_can_change_the_recommendation() {
    let catalog = Catalog::builtin().unwrap();
    let laptop = pc(16, 8, vec![]);
    let estimated = plan(&laptop, &catalog, PlanOptions::default());
    let best = estimated.recommended.clone().unwrap();
    assert_eq!((best.model.as_str(), best.quant), ("llama-3.1-8b-instruct", Quant::Q6K));
    let id = "llama-3.1-8b-instruct:q6_k";

    // Measured slower than reading speed: listed with the real figure, no longer recommended.
    let slow =
        Measured { variant: id.into(), resident_bytes: 7 * GIB, gpu_bytes: vec![], tokens_per_second: Some(1.5) };
    let measured = plan_measured(&laptop, &catalog, PlanOptions::default(), &[slow]);
    let row = measured.candidates.iter().find(|c| c.model == best.model && c.quant == Quant::Q6K).unwrap();
    assert_eq!(row.tokens_per_second_estimate, 1.5);
    assert!(
        row.explanation.contains("Measured on this machine: 7.0 GiB resident, 1.5 tokens/s"),
        "{}",
        row.explanation
    );
    let now = measured.recommended.unwrap();
    assert_ne!((now.model.as_str(), now.quant), ("llama-3.1-8b-instruct", Quant::Q6K));

    // Measured larger than this machine can give: it no longer fits.
    let big = Measured { variant: id.into(), resident_bytes: 15 * GIB, gpu_bytes: vec![], tokens_per_second: None };
    let measured = plan_measured(&laptop, &catalog, PlanOptions::default(), &[big]);
    let row = measured.candidates.iter().find(|c| c.model == best.model && c.quant == Quant::Q6K).unwrap();
    assert_eq!(row.fit, Fit::TooLarge);
    assert_eq!(row.tokens_per_second_estimate, best.tokens_per_second_estimate, "no speed measured: estimate kept");

    // Measured smaller than the estimate: the estimate stands (a short reply's memory is a floor).
    let small = Measured { variant: id.into(), resident_bytes: GIB, gpu_bytes: vec![], tokens_per_second: None };
    let measured = plan_measured(&laptop, &catalog, PlanOptions::default(), &[small]);
    assert_eq!(measured.recommended.unwrap().devices, best.devices);
}

#[test]
fn a_plan_split_between_gpu_and_cpu_names_the_layers_for_each_gpu() {
    let catalog = Catalog::builtin().unwrap();
    let rig = pc(64, 16, nvidia("NVIDIA GeForce RTX 3090", 24, "8.6", 2));
    let plan_for_rig = plan(&rig, &catalog, PlanOptions::default());
    let best = plan_for_rig
        .candidates
        .iter()
        .find(|c| c.model == "llama-3.1-70b-instruct" && c.quant == Quant::Q4KM)
        .expect("the 70B Q4_K_M row")
        .clone();
    let Placement::LayerSplit { gpu_layers, cpu_layers } = best.placement else { panic!("{:?}", best.placement) };
    let per_gpu = gpu_layers_for(&best, &catalog);
    assert_eq!(per_gpu.len(), 2);
    assert_eq!(per_gpu.iter().sum::<u32>(), gpu_layers);
    assert!(cpu_layers > 0 && per_gpu.iter().all(|n| *n > 0), "{per_gpu:?} + {cpu_layers} on the CPU");
    // One GPU that holds everything: the engine places it itself.
    let one = plan(&pc(64, 16, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 1)), &catalog, PlanOptions::default());
    assert!(gpu_layers_for(&one.recommended.unwrap(), &catalog).is_empty());
}

/// llama.cpp takes only how many layers go on the GPUs and shares them out by each GPU's free
/// memory; its plan must say what llama.cpp will do, not fill the GPUs in order as mistral.rs's
/// device map does, and never promise tensor parallelism, which llama.cpp lacks.
#[test]
fn llama_cpp_plans_share_layers_over_gpus_by_free_memory_as_llama_cpp_does() {
    let catalog = Catalog::builtin().unwrap();
    let mut gpus = nvidia("NVIDIA GeForce RTX 3090", 24, "8.6", 1);
    gpus.extend(nvidia("NVIDIA GeForce RTX 3060", 12, "8.6", 1));
    let rig = pc(64, 16, gpus);
    let planned = plan(&rig, &catalog, PlanOptions::default());
    let row = |model: &str, quant: Quant| {
        planned.candidates.iter().find(|c| c.model == model && c.quant == quant).unwrap().clone()
    };

    // 8B Q4_K_M fits on the 3090 alone, but llama.cpp would spread it over both: so it is planned.
    let small = row("llama-3.1-8b-instruct", Quant::Q4KM);
    assert_eq!(small.engine, EngineKind::LlamaCpp);
    let Placement::LayerSplit { gpu_layers, cpu_layers: 0 } = small.placement else { panic!("{:?}", small.placement) };
    let per_gpu = gpu_layers_for(&small, &catalog);
    assert_eq!(per_gpu.iter().sum::<u32>(), gpu_layers);
    assert_eq!(gpu_layers, 32, "every layer on the GPUs");
    // 23.5 and 11.5 GiB free: 67 % and 33 % of the layers, as llama.cpp's cumulative split gives.
    assert_eq!(per_gpu, vec![22, 10], "{}", small.explanation);
    assert!(small.explanation.contains("one after another"), "{}", small.explanation);

    // 70B Q4_K_M does not fit on both: the layers that do are shared the same way, the rest on the CPU.
    let large = row("llama-3.1-70b-instruct", Quant::Q4KM);
    let Placement::LayerSplit { gpu_layers, cpu_layers } = large.placement else { panic!("{:?}", large.placement) };
    assert!(cpu_layers > 0);
    let per_gpu = gpu_layers_for(&large, &catalog);
    assert_eq!(per_gpu.iter().sum::<u32>(), gpu_layers);
    let share = f64::from(per_gpu[0]) / f64::from(gpu_layers);
    assert!((share - 23.5 / 35.0).abs() < 0.05, "{per_gpu:?}: the 3090 takes its share of free memory");
    for d in large.devices.iter().filter(|d| d.device.starts_with("cuda:")) {
        assert!(d.weights_bytes + d.kv_cache_bytes + d.overhead_bytes <= d.budget_bytes, "{d:?} fits");
    }

    // A safetensors model on the same GPUs runs on mistral.rs, which fills them in order.
    let bf16 = row("llama-3.1-8b-instruct", Quant::Bf16);
    assert_eq!(bf16.engine, EngineKind::MistralRs);

    // Four equal GPUs: llama.cpp gets a layer split, evenly; mistral.rs tensor parallelism.
    let four = plan(&pc(1024, 128, nvidia("NVIDIA H100 80GB HBM3", 80, "9.0", 4)), &catalog, PlanOptions::default());
    for c in four.candidates.iter().filter(|c| c.fit == Fit::Gpu) {
        match c.engine {
            EngineKind::LlamaCpp => {
                assert!(matches!(c.placement, Placement::LayerSplit { cpu_layers: 0, .. }), "{c:?}");
                let per_gpu = gpu_layers_for(c, &catalog);
                let (min, max) = (per_gpu.iter().min().unwrap(), per_gpu.iter().max().unwrap());
                assert!(max - min <= 1, "{per_gpu:?}");
            }
            EngineKind::MistralRs => assert!(!matches!(c.placement, Placement::LayerSplit { .. }), "{c:?}"),
            EngineKind::Remote => panic!("a remote server is never planned: {c:?}"),
        }
    }
}
