"""CPU tests of the validation scripts (models, kernel classification, JSON, count mode).

    python3 -m unittest discover -s validation -p 'test_*.py' -v      # from the repository root

Needs torch (CPU is enough). Skipped as a whole when torch is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

TINY_JIT = dict(depth=2, dim=64, heads=2, bottleneck=16, img_size=16)
TINY_GPT = dict(depth=2, dim=64, heads=2, seq=32, vocab=97)
TINY_LLAMA = dict(depth=2, dim=64, heads=4, kv_heads=2, mlp_hidden=96, seq=32, vocab=97)
TINY_MIXTRAL = dict(TINY_LLAMA, experts=4)


def llama_parameters(cfg) -> int:
    """Parameters of the Llama-style models from their layer sizes (no biases, untied head)."""
    d, dh = cfg.dim, cfg.dim // cfg.heads
    attn = d * (cfg.heads + 2 * cfg.kv_heads) * dh + cfg.heads * dh * d
    swiglu = d * 2 * cfg.mlp_hidden + cfg.mlp_hidden * d
    mlp = cfg.experts * swiglu + d * cfg.experts if cfg.experts else swiglu
    return 2 * cfg.vocab * d + cfg.depth * (2 * d + attn + mlp) + d


def linear_flops_jit(batch: int, cfg) -> int:
    """Forward matmul FLOPs of the JiT linears (2 per MAC), from the architecture alone."""
    d, h, n_tok = cfg.dim, cfg.mlp_hidden, cfg.grid ** 2
    seq = 2 * n_tok
    per_token = d * 3 * d + d * d + d * 2 * h + h * d
    blocks = cfg.depth * (2 * batch * seq * per_token + 2 * batch * d * 6 * d)
    t_emb = 2 * batch * (256 * d + d * d)
    final = 2 * batch * d * 2 * d + 2 * batch * n_tok * d * cfg.patch ** 2 * cfg.in_chans
    return blocks + t_emb + final


@unittest.skipIf(torch is None, "torch not installed")
class ModelTests(unittest.TestCase):
    def test_parameter_counts(self):
        from models import build_model, count_parameters

        with torch.device("meta"):
            jit = count_parameters(build_model("jit-b4"))
            gpt = count_parameters(build_model("gpt2-124m"))
        self.assertEqual(gpt["trainable"], 124_439_808)  # GPT-2 small, tied embeddings
        # JiT-B/4 from its layer sizes: embedders + 12 blocks + final layer.
        d, hid = 768, 2048
        block = (2 * d + 2 * 64 + (d * 3 * d + 3 * d) + (d * d + d) + (d * 2 * hid + 2 * hid)
                 + (hid * d + d) + (d * 6 * d + 6 * d))
        expected = (3 * 128 * 16 + 128 * d + d + (256 * d + d) + (d * d + d) + 1001 * d
                    + 12 * block + d + (d * 2 * d + 2 * d) + (d * 48 + 48))
        self.assertEqual(jit["trainable"], expected)
        self.assertEqual(jit["trainable"], 130_453_296)

    def test_parameter_counts_llama3_mixtral(self):
        from models import Llama3Config, MixtralConfig, build_model, count_parameters

        with torch.device("meta"):
            llama = count_parameters(build_model("llama3-8b"))
            mixtral = count_parameters(build_model("mixtral-8x7b"))
        self.assertEqual(llama["trainable"], llama_parameters(Llama3Config()))
        self.assertEqual(llama["trainable"], 8_030_261_248)  # Llama 3 8B, untied lm_head
        self.assertEqual(mixtral["trainable"], llama_parameters(MixtralConfig()))
        self.assertEqual(mixtral["trainable"], 46_702_792_704)  # Mixtral 8x7B, router 4096*8 per block
        self.assertEqual(llama["buffers"], 2 * 8192 * 128)  # RoPE cos/sin tables

    def test_attention_implementations_agree_fp32(self):
        from models import ATTENTION_CHOICES, attention_backends, build_model

        for name, kw in (("jit-b4", TINY_JIT), ("gpt2-124m", TINY_GPT), ("llama3-8b", TINY_LLAMA),
                         ("mixtral-8x7b", TINY_MIXTRAL)):
            ref = None
            for att in ATTENTION_CHOICES:
                torch.manual_seed(0)
                model = build_model(name, att, **kw)
                batch = model.make_batch(2, "cpu", generator=torch.Generator().manual_seed(1))
                loss = model.training_loss(batch)
                loss.backward()
                grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
                self.assertEqual(attention_backends(model), [att])
                if ref is None:
                    ref = (loss.detach(), grad)
                else:
                    torch.testing.assert_close(loss.detach(), ref[0], rtol=1e-5, atol=1e-5)
                    torch.testing.assert_close(grad, ref[1], rtol=1e-4, atol=1e-5)

    def test_causal_mask_is_applied(self):
        from models import build_model

        torch.manual_seed(0)
        model = build_model("gpt2-124m", "naive", **TINY_GPT).eval()
        idx = torch.randint(0, 97, (1, 32))
        idx2 = idx.clone()
        idx2[0, -1] = (idx[0, -1] + 1) % 97
        with torch.no_grad():
            a, b = model(idx), model(idx2)
        torch.testing.assert_close(a[0, :-1], b[0, :-1])  # earlier positions do not see the last

    def test_llama_causal_and_bf16(self):
        from models import build_model

        torch.manual_seed(0)
        for name, kw in (("llama3-8b", TINY_LLAMA), ("mixtral-8x7b", TINY_MIXTRAL)):
            model = build_model(name, "flash2", **kw).eval()
            idx = torch.randint(0, 97, (2, 32))  # mixtral: 2 * 32 tokens * top-2 = 16 rows per expert
            idx2 = idx.clone()
            idx2[:, -1] = (idx[:, -1] + 1) % 97
            with torch.no_grad():
                a, b = model(idx), model(idx2)
            if name == "llama3-8b":  # (the MoE's balanced groups mix tokens across positions)
                torch.testing.assert_close(a[:, :-1], b[:, :-1])
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model.training_loss(model.make_batch(2, "cpu"))
            loss.backward()
            self.assertTrue(torch.isfinite(loss))

    def test_gqa_flash2_passes_kv_unexpanded(self):
        """flash2 hands SDPA the key/value heads as they are (enable_gqa); naive and sdpa-math
        expand them first (repeat_kv: a clone of [B, Hkv, H/Hkv, L, dh] for k and for v)."""
        from torch.utils._python_dispatch import TorchDispatchMode

        from models import build_model

        ops = []

        class Shapes(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
                ops.append((func.overloadpacket.__name__, shapes))
                return func(*args, **(kwargs or {}))

        for att in ("naive", "sdpa-math", "flash2"):
            torch.manual_seed(0)
            model = build_model("llama3-8b", att, **TINY_LLAMA)
            ops.clear()
            with Shapes():
                model.training_loss(model.make_batch(2, "cpu"))
            expand_copies = [s for name, s in ops if name == "clone" and s[0] == (2, 2, 2, 32, 16)]
            if att == "flash2":
                self.assertEqual(expand_copies, [])
                sdpa = [s for name, s in ops if name == "_scaled_dot_product_flash_attention_for_cpu"]
                self.assertEqual(len(sdpa), TINY_LLAMA["depth"])
                for q, k, v in sdpa:
                    self.assertEqual((q[1], k[1], v[1]), (4, 2, 2))
            else:
                self.assertEqual(len(expand_copies), 2 * TINY_LLAMA["depth"])  # k and v per block

    def test_moe_matches_dense_experts_when_every_token_takes_every_expert(self):
        """With top_k == experts routing is balanced by construction: the grouped-GEMM layer must
        equal the weighted sum of the experts applied to every token."""
        import torch.nn.functional as F

        from models import MoE

        torch.manual_seed(0)
        moe = MoE(dim=16, hidden=24, experts=2, top_k=2)
        x = torch.randn(3, 5, 16)
        out = moe(x)
        probs = torch.softmax(moe.router(x).float(), dim=-1)  # top-2 of 2: all, renormalised to 1
        ref = torch.zeros_like(x)
        for e in range(2):
            a, b = (x @ moe.w12.weight[e]).chunk(2, dim=-1)
            ref += probs[..., e:e + 1] * ((F.silu(a) * b) @ moe.w3.weight[e])
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)

    def test_bf16_autocast_and_in_context_tokens(self):
        from models import build_model

        torch.manual_seed(0)
        model = build_model("jit-b4", "naive", in_context_len=4, in_context_start=1, **TINY_JIT)
        batch = model.make_batch(2, "cpu")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = model(batch["target"], batch["t"], batch["label"], batch["cond"])
            loss = model.training_loss(batch)
        self.assertEqual(tuple(pred.shape), (2, 16, 48))  # target tokens only, p*p*3 outputs
        loss.backward()
        self.assertTrue(torch.isfinite(loss))
        self.assertIsNotNone(model.in_context_posemb.grad)

    def test_jit_sequence(self):
        from models import build_model

        with torch.device("meta"):
            self.assertEqual(build_model("jit-b4").seq_len, 512)
            self.assertEqual(build_model("gpt2-124m").seq_len, 1024)
            self.assertEqual(build_model("llama3-8b").seq_len, 8192)
            self.assertEqual(build_model("mixtral-8x7b").seq_len, 32768)


class ClassifyTests(unittest.TestCase):
    def test_rules(self):
        from measure import classify_kernel

        cases = {
            "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1": "gemm",
            "nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NTN": "gemm",
            "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_nn_align8>": "gemm",
            "ampere_sgemm_128x64_nn": "gemm",
            "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc": "gemm",
            "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4>>": "attention",
            "void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<...>": "attention",
            "fmha_cutlassF_bf16_aligned_64x64_rf_sm80": "attention",
            "void (anonymous namespace)::softmax_warp_forward<float, float, float, 9, false, false>": "attention",
            "triton_per_fused__softmax_add_mul_3": "attention",
            "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, at::native::(anonymous namespace)::LogSoftMaxForwardEpilogue>": "other",
            "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>": "normalization",
            "triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_1": "normalization",
            "triton_poi_fused__to_copy_convert_element_type_mul_2": "elementwise",
            "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>": "elementwise",
            "void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda>": "elementwise",
            "Memcpy DtoD (Device -> Device)": "elementwise",
            "Memset (Device)": "elementwise",
            "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t>>": "elementwise",
            "void at::native::(anonymous namespace)::fused_adamw_kernel": "optimizer",
            "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::FusedOptimizerTensorListMetadata<4>>": "optimizer",
            "void at::native::embedding_backward_feature_kernel<float, float, long>": "other",
        }
        for name, cls in cases.items():
            self.assertEqual(classify_kernel(name), cls, name)

    def test_summarize(self):
        from measure import CLASSES, summarize_kernels

        kernels = [("ampere_sgemm_128x64_nn", 0.004), ("flash_fwd_kernel", 0.002),
                   ("vectorized_elementwise_kernel", 0.001), ("ampere_sgemm_128x64_nn", 0.004)]
        s = summarize_kernels(kernels, steps=2)
        self.assertEqual(set(s["class_times_s"]), set(CLASSES))
        self.assertAlmostEqual(s["class_times_s"]["gemm"], 0.004)
        self.assertAlmostEqual(s["gpu_kernel_time_s"], 0.0055)
        self.assertEqual(s["kernels_per_step"], 2)
        self.assertEqual(s["class_kernels_per_step"]["gemm"], 1)
        self.assertEqual(sum(s["class_kernels_per_step"].values()), 2)
        self.assertEqual(s["attention_kernel_family"], ["flash"])
        self.assertEqual(s["top_kernels"][0]["calls_per_step"], 1)


class PlanAndJsonTests(unittest.TestCase):
    def test_default_plan(self):
        from measure import build_parser, plan_configs

        plan = plan_configs(build_parser().parse_args([]))
        eager = [c for c in plan if c["mode"] == "eager"]
        compiled = [c for c in plan if c["mode"] == "compiled"]
        self.assertEqual(len(eager), (5 + 3) * 2)
        self.assertEqual(len(compiled), 2 * 2)
        self.assertEqual(plan[0]["model"], "jit-b4")
        jit = [c for c in plan if c["model"] == "jit-b4"]
        self.assertEqual([c["mode"] for c in jit], ["eager"] * 10 + ["compiled"] * 2)

    def test_planned_plan_starts_with_the_planned_run(self):
        from measure import build_parser, plan_configs
        plan = plan_configs(build_parser().parse_args(["--plan", "planned"]))
        self.assertEqual(plan[0], {"model": "jit-b4", "batch": 64, "attention": "naive", "mode": "compiled"})
        self.assertEqual(plan[1]["mode"], "eager")
        keys = [(c["model"], c["batch"], c["attention"], c["mode"]) for c in plan]
        self.assertEqual(len(keys), len(set(keys)))
        for b in (16, 32, 64, 128):
            for a in ("naive", "flash2"):
                for m in ("eager", "compiled"):
                    self.assertIn(("jit-b4", b, a, m), keys)
        self.assertIn(("gpt2-124m", 16, "flash2", "compiled"), keys)

    def test_explicit_config(self):
        from measure import build_parser, parse_config, plan_configs

        args = build_parser().parse_args(["--config", "jit-b4:64:flash2:compiled"])
        self.assertEqual(plan_configs(args), [{"model": "jit-b4", "batch": 64, "attention": "flash2",
                                               "mode": "compiled"}])
        with self.assertRaises(ValueError):
            parse_config("jit-b4:64:flash3:eager")

    def test_host_bound_configurations_are_measured_again(self):
        """A host-bound result (kernels < 75% of the step) gets a second measurement under
        ``repeat``; a GPU-bound one, a failed one and one past the budget do not."""
        import measure

        args = measure.build_parser().parse_args([])
        plan = [{"model": "jit-b4", "batch": b, "attention": "flash2", "mode": "eager"}
                for b in (8, 64, 16)]
        doc = {"configs": [
            {"step_time_s": 0.0655, "gpu_kernel_time_s": 0.0281, "error": None},   # 43% busy
            {"step_time_s": 0.1907, "gpu_kernel_time_s": 0.1887, "error": None},   # 99% busy
            {"step_time_s": None, "gpu_kernel_time_s": None, "error": "OutOfMemoryError: x"},
        ]}
        self.assertEqual([measure.host_bound(r) for r in doc["configs"]], [True, False, False])
        # No GPU activity profiled: nothing to judge by, not host-bound.
        self.assertFalse(measure.host_bound({"step_time_s": 0.05, "gpu_kernel_time_s": 0.0,
                                             "error": None}))
        ran = []

        def fake_run(cfg, args, result, **kw):
            ran.append(cfg["batch"])
            result.update({"step_time_s": 0.055, "host_step_time_s": 0.054, "kernels_per_step": 2817.0})

        real = (measure.run_config, measure.cleanup)
        measure.run_config, measure.cleanup = fake_run, lambda: None
        try:
            with tempfile.TemporaryDirectory() as d:
                args.out = os.path.join(d, "m.json")
                measure.repeat_host_bound(doc, plan, args, time.perf_counter())
                self.assertEqual(ran, [8])
                rep = doc["configs"][0]["repeat"]
                self.assertEqual((rep["step_time_s"], rep["host_step_time_s"], rep["error"]),
                                 (0.055, 0.054, None))
                self.assertNotIn("repeat", doc["configs"][1])
                with open(args.out) as f:  # written as it goes
                    self.assertIn("repeat", json.load(f)["configs"][0])
                # Past the budget nothing runs, and the file says why; turned off nothing runs.
                del doc["configs"][0]["repeat"]
                measure.repeat_host_bound(doc, plan, args, time.perf_counter() - args.budget_s)
                self.assertTrue(doc["configs"][0]["repeat"]["error"].startswith("skipped: time budget"))
                del doc["configs"][0]["repeat"]
                args.repeat_host_bound = False
                measure.repeat_host_bound(doc, plan, args, time.perf_counter())
                self.assertEqual(ran, [8])
                self.assertNotIn("repeat", doc["configs"][0])
        finally:
            measure.run_config, measure.cleanup = real

    @unittest.skipIf(torch is None, "torch not installed")
    def test_sync_calls_are_counted(self):
        """count_sync_calls counts c10's sync warnings raised while the mode is "warn", and
        restores the mode (the CUDA calls themselves are stood in for: no GPU here)."""
        import warnings

        import measure

        modes = []
        real = (torch.cuda.set_sync_debug_mode, torch.cuda.get_sync_debug_mode, torch.cuda.synchronize)
        torch.cuda.set_sync_debug_mode, torch.cuda.synchronize = modes.append, lambda: None
        torch.cuda.get_sync_debug_mode = lambda: 0

        def step():
            for _ in range(3):
                warnings.warn("called a synchronizing CUDA operation")
            warnings.warn("an unrelated warning")

        try:
            self.assertEqual(measure.count_sync_calls(step), 3)
            self.assertEqual(modes, ["warn", 0])  # the previous mode restored
        finally:
            torch.cuda.set_sync_debug_mode, torch.cuda.get_sync_debug_mode, torch.cuda.synchronize = real

    def test_write_json_atomic(self):
        from measure import write_json

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "sub", "m.json")
            write_json(path, {"configs": [1]})
            write_json(path, {"configs": [1, 2]})
            with open(path) as f:
                self.assertEqual(json.load(f)["configs"], [1, 2])
            self.assertFalse(os.path.exists(path + ".tmp"))

    def test_example_file_schema(self):
        from measure import CLASSES, SCHEMA

        with open(os.path.join(HERE, "example-measurements.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["schema"], SCHEMA)
        self.assertTrue(doc["example"])
        self.assertIn("not a measurement", doc["note"].lower())
        for key in ("name", "sm_count", "driver", "torch", "cuda", "cudnn"):
            self.assertIn(key, doc["device"])
        for c in doc["configs"]:
            for key in ("model", "batch", "attention", "mode", "precision", "ema", "step_time_s",
                        "step_time_p10_s", "step_time_p90_s", "steps", "class_times_s",
                        "kernels_per_step", "peak_memory_bytes", "error"):
                self.assertIn(key, c)
            if c["error"] is None:
                self.assertEqual(set(c["class_times_s"]), set(CLASSES))
                self.assertLessEqual(sum(c["class_times_s"].values()), c["step_time_s"])

    @unittest.skipIf(torch is None or (torch is not None and torch.cuda.is_available()),
                     "needs torch without CUDA")
    def test_refuses_without_cuda(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "m.json")
            r = subprocess.run([sys.executable, os.path.join(HERE, "measure.py"), "--out", out],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("no CUDA", r.stderr)
            self.assertFalse(os.path.exists(out))

    @unittest.skipIf(torch is None, "torch not installed")
    def test_run_config_on_cpu(self):
        """The measuring code path end to end on a tiny model (CPU, wall-clock timing)."""
        from measure import build_parser, empty_result, run_config

        args = build_parser().parse_args(["--warmup", "1", "--steps", "3", "--profile-steps", "1",
                                          "--ema", "1"])
        for cfg, kw in (({"model": "jit-b4", "batch": 2, "attention": "flash2", "mode": "eager"}, TINY_JIT),
                        ({"model": "gpt2-124m", "batch": 2, "attention": "naive", "mode": "eager"}, TINY_GPT)):
            result = empty_result(cfg, args)
            run_config(cfg, args, result, device="cpu", model_kwargs=kw)
            self.assertEqual(result["steps"], 3)
            self.assertGreater(result["step_time_s"], 0)
            self.assertLessEqual(result["step_time_p10_s"], result["step_time_p90_s"])
            self.assertTrue(result["optimizer"].startswith("AdamW"))
            self.assertTrue(result["ema"])
            self.assertEqual(result["attention_ran"], [cfg["attention"]])
            self.assertIs(result["timed_after_profiler"], False)  # no CUDA profile on CPU
            # Host time per step and the CPU ops behind it.
            self.assertGreater(result["host_step_time_s"], 0)
            self.assertNotIn("host_ops_error", result)
            self.assertGreater(result["host_ops_per_step"], 10)
            top = result["host_top_ops"]
            self.assertTrue(top and all(o["self_cpu_s_per_step"] >= 0 for o in top))
            self.assertEqual(top, sorted(top, key=lambda o: -o["self_cpu_s_per_step"]))
            # ATen ops by shape (no device time on CPU, but the ops and their shapes are there).
            self.assertNotIn("device_ops_error", result)
            ops = result["device_top_ops"]
            self.assertTrue(ops and all(o["name"].startswith("aten::") for o in ops))
            self.assertTrue(any("[" in o["input_shapes"] for o in ops))
            json.dumps(result)  # serialisable
            self.assertNotIn("after_profile", result)

    @unittest.skipIf(torch is None, "torch not installed")
    def test_retime_after_profile_on_cpu(self):
        """--retime-after-profile times the same steps again after the profile."""
        from measure import build_parser, empty_result, run_config

        args = build_parser().parse_args(["--warmup", "1", "--steps", "2", "--profile-steps", "1",
                                          "--host-steps", "2", "--retime-after-profile"])
        cfg = {"model": "jit-b4", "batch": 2, "attention": "flash2", "mode": "eager"}
        result = empty_result(cfg, args)
        run_config(cfg, args, result, device="cpu", model_kwargs=TINY_JIT)
        after = result["after_profile"]
        self.assertGreater(after["step_time_s"], 0)
        self.assertGreater(after["host_step_time_s"], 0)
        self.assertLessEqual(after["host_step_time_min_s"], after["host_step_time_s"])
        self.assertIsInstance(after["cupti_teardown"], bool)
        # A failing retime is recorded and keeps the first measurement and the profile.
        import measure

        real = measure.timed_steps
        calls = []

        def fail_second(*a, **kw):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("boom")
            return real(*a, **kw)

        measure.timed_steps = fail_second
        try:
            result = empty_result(cfg, args)
            run_config(cfg, args, result, device="cpu", model_kwargs=TINY_JIT)
        finally:
            measure.timed_steps = real
        self.assertEqual(result["after_profile"]["error"], "RuntimeError: boom")
        self.assertGreater(result["step_time_s"], 0)
        self.assertIn("class_times_s", result)
        # Without a profile there is nothing to retime after: refused.
        self.assertEqual(measure.main(["--retime-after-profile", "--profile-steps", "0",
                                       "--dry-run"]), 2)


@unittest.skipIf(torch is None, "torch not installed")
class CountTests(unittest.TestCase):
    def test_tiny_jit_counts_match_formulas(self):
        import count
        from models import JiTConfig

        cfg = JiTConfig(**TINY_JIT)
        batch, seq, d = 3, 2 * cfg.grid ** 2, cfg.dim
        naive = count.count_one("jit-b4", batch, "naive", "fp32", TINY_JIT)
        flash = count.count_one("jit-b4", batch, "flash2", "bf16-autocast", TINY_JIT)
        fwd = naive["flops_forward"]["by_op"]
        self.assertEqual(fwd["addmm"], linear_flops_jit(batch, cfg))
        attn_fwd = 4 * batch * seq * seq * d * cfg.depth  # QK^T and PV, 2 FLOPs per MAC
        self.assertEqual(fwd["bmm"], attn_fwd)
        self.assertEqual(flash["flops_forward"]["total"], naive["flops_forward"]["total"])
        # Flash backward recomputes the scores: 2.5x forward instead of 2x.
        self.assertEqual(flash["flops_backward"]["total"] - naive["flops_backward"]["total"],
                         attn_fwd // 2)
        # Naive attention saves O(s^2) tensors, flash does not.
        self.assertGreater(naive["saved_for_backward"]["activation_bytes"],
                           flash["saved_for_backward"]["activation_bytes"])
        self.assertGreater(flash["saved_for_backward"]["autocast_weight_copy_bytes"], 0)
        self.assertEqual(naive["saved_for_backward"]["autocast_weight_copy_bytes"], 0)

    def test_saved_bytes_scale_with_batch(self):
        import count

        a = count.count_one("gpt2-124m", 1, "flash2", "fp32", TINY_GPT)["saved_for_backward"]
        b = count.count_one("gpt2-124m", 2, "flash2", "fp32", TINY_GPT)["saved_for_backward"]
        per_block_a = a["by_scope"]["blocks.1"]
        self.assertEqual(b["by_scope"]["blocks.1"], 2 * per_block_a)

    def test_dispatch_counts_kernels_not_views(self):
        import count
        from models import JiTConfig

        cfg = JiTConfig(**TINY_JIT)
        a = count.dispatch_one("jit-b4", 2, "naive", model_kwargs=TINY_JIT)
        b = count.dispatch_one("jit-b4", 4, "naive", model_kwargs=TINY_JIT)
        for phase in ("forward", "backward"):
            ops = a[phase]["by_op"]
            self.assertEqual(sum(ops.values()), a[phase]["kernels"])
            for view in ("view", "_unsafe_view", "t", "transpose", "permute", "expand", "detach"):
                self.assertNotIn(view, ops)
            # The op program does not depend on the batch (from 2 on); the bytes grow with it.
            self.assertEqual(a[phase]["by_op"], b[phase]["by_op"])
            self.assertGreater(b[phase]["bytes"], a[phase]["bytes"])
        # Five linear layers per block, each an addmm in the forward and two mm in the backward.
        # Plus the timestep MLP (2), the final adaLN and the final linear; the first timestep
        # linear needs no input gradient (one mm instead of two).
        self.assertEqual(a["forward"]["by_op"]["addmm"] - 5 * cfg.depth, 4)
        self.assertEqual(a["backward"]["by_op"]["mm"], 2 * a["forward"]["by_op"]["addmm"] - 1)

    def test_fixtures_present_and_consistent(self):
        from models import GPT2Config, Llama3Config, MixtralConfig

        for name in ("jit-b4", "gpt2-124m", "llama3-8b", "mixtral-8x7b"):
            path = os.path.join(ROOT, "tests", "reference", "fixtures", f"{name}.json")
            with open(path) as f:
                doc = json.load(f)
            for key in ("torch_version", "command", "date", "device", "batch", "seq", "parameters", "runs"):
                self.assertIn(key, doc)
            for run in doc["runs"]:
                self.assertNotIn("error", run, run)
        with open(os.path.join(ROOT, "tests", "reference", "fixtures", "gpt2-124m.json")) as f:
            g = json.load(f)
        c = GPT2Config()
        fwd = g["runs"][0]["flops_forward"]["by_op"]
        self.assertEqual(fwd["mm"], 2 * g["batch"] * c.seq * c.dim * c.vocab)  # tied lm_head
        self.assertEqual(fwd["bmm"], 4 * g["batch"] * c.seq ** 2 * c.dim * c.depth)  # no causal halving
        # Llama 3 8B and Mixtral: every linear is a bias-free mm (2 * tokens * in * out); the
        # experts' grouped GEMMs are bmm over tokens * top_k rows; attention over 32 query heads.
        for name, c in (("llama3-8b", Llama3Config()), ("mixtral-8x7b", MixtralConfig())):
            with open(os.path.join(ROOT, "tests", "reference", "fixtures", f"{name}.json")) as f:
                doc = json.load(f)
            self.assertEqual(doc["parameters"]["trainable"], llama_parameters(c))
            tokens, d, dh = doc["batch"] * c.seq, c.dim, c.dim // c.heads
            attn = d * (c.heads + 2 * c.kv_heads) * dh + c.heads * dh * d
            swiglu = d * 2 * c.mlp_hidden + c.mlp_hidden * d
            dense = attn + (d * c.experts if c.experts else swiglu)
            sdpa = 4 * doc["batch"] * c.seq ** 2 * c.heads * dh * c.depth
            for run in doc["runs"]:
                fwd = run["flops_forward"]["by_op"]
                self.assertEqual(fwd["mm"], 2 * tokens * (c.depth * dense + d * c.vocab))
                experts = 2 * tokens * c.top_k * swiglu * c.depth if c.experts else 0
                attention_fwd = fwd.get("_scaled_dot_product_flash_attention_for_cpu", 0)
                self.assertEqual(fwd.get("bmm", 0) + attention_fwd, experts + sdpa)


if __name__ == "__main__":
    unittest.main()
