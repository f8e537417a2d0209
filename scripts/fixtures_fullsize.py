#!/usr/bin/env python3
"""Keeps the full-size generator and the checkpoint formats honest at tiny size
(run by `make fixtures`; writes only tests/fixtures/fullsize/: manifest.txt and model/).

1. scripts/sxckpt.py against the official libraries: torch.save files (zip and legacy
   pre-1.6 format; views, shared storages, parameters, 0-d and int tensors, a
   {"state_dict": ...} wrapper) and safetensors files read back equal to torch.load /
   safetensors; TorchZipWriter / SafetensorsWriter files load with torch.load /
   safetensors (the safetensors file is byte-identical to safetensors' own).
2. make_fullsize.py --scale tiny (the same code path as the real-size model, small
   shapes) for seed-x-i and seed-x-edit; --check opens every file with the official
   loading code (torch.load, LlamaForCausalLM / UNet2DConditionModel / AutoencoderKL /
   EulerDiscreteScheduler / LlamaTokenizer .from_pretrained).
3. convert.py --pretrained converts both variants; every converted tensor equals the
   generator's value; if ./seedx is built, chat, ground, generate, edit and both
   reconstructions run on the converted models.
4. manifest.txt: size and sha256 of every official file and every converted file, so a
   change of the generator or the converter output shows up as a fixture diff.
5. model/: the converted seed-x-edit model (every file a mode reads), which
   tests/test_fullsize.c runs through every mode in `make test` (no Python there).
"""
import collections
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_fullsize  # noqa: E402
import sxckpt  # noqa: E402
from sxgguf import read_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "fullsize")


def check_formats(tmp):
    from safetensors.torch import load_file, save_file
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=g)
    sd = collections.OrderedDict()
    sd["a"] = torch.randn(3, 4, generator=g)
    sd["b"] = torch.randn(5, generator=g).bfloat16()
    sd["c"] = torch.randn(2, 3, generator=g).half()
    sd["t"] = base.t()                                        # strided view
    sd["s"] = base[2:4]                                       # offset into a shared storage
    sd["p"] = torch.nn.Parameter(torch.randn(4, generator=g))
    sd["z"] = torch.tensor(3.5)                               # 0-d
    sd["v"] = torch.randn(4, 4, generator=g)[:, :, None, None]
    sd["i"] = torch.arange(5)
    for legacy in (False, True):
        p = os.path.join(tmp, f"fmt{int(legacy)}.bin")
        torch.save(sd, p, _use_new_zipfile_serialization=not legacy)
        got = sxckpt.read_file(p)
        assert list(got) == list(sd)
        for k, v in sd.items():
            assert np.array_equal(got[k].load(), v.detach().float().numpy()), (legacy, k)
    torch.save({"state_dict": sd, "epoch": 3}, os.path.join(tmp, "wrapped.pt"))
    assert list(sxckpt.read_file(os.path.join(tmp, "wrapped.pt"))) == list(sd)
    st = {k: v.detach().contiguous() for k, v in sd.items() if k != "z"}
    save_file(st, os.path.join(tmp, "ref.safetensors"), metadata={"format": "pt"})
    got = sxckpt.read_file(os.path.join(tmp, "ref.safetensors"))
    for k, v in st.items():
        assert np.array_equal(got[k].load(), v.float().numpy()), k

    def raw(v):
        return [(v.view(torch.int16) if v.dtype == torch.bfloat16 else v).numpy().tobytes()]
    specs = [(k, tuple(v.shape), str(v.dtype)[len("torch."):]) for k, v in st.items()]
    w = sxckpt.TorchZipWriter(os.path.join(tmp, "mine.bin"), specs)
    for k, v in st.items():
        w.write_tensor(k, raw(v))
    w.close()
    back = torch.load(os.path.join(tmp, "mine.bin"))
    assert list(back) == list(st) and all(torch.equal(back[k], v) and back[k].dtype == v.dtype
                                          for k, v in st.items())
    w = sxckpt.SafetensorsWriter(os.path.join(tmp, "mine.safetensors"), specs, {"format": "pt"})
    for k, _, _ in w.order:
        w.write_tensor(k, raw(st[k]))
    w.close()
    assert all(torch.equal(load_file(os.path.join(tmp, "mine.safetensors"))[k], v) for k, v in st.items())
    same = open(os.path.join(tmp, "mine.safetensors"), "rb").read() == \
        open(os.path.join(tmp, "ref.safetensors"), "rb").read()
    assert same, "SafetensorsWriter output differs from safetensors.torch.save_file"
    print("  sxckpt: torch zip / legacy / safetensors readers and writers agree with torch")


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def check_converted(model, pre, plan):
    """Every tensor of the converted files equals the generator's value (the
    weights are bf16-exact, so the bf16 conversion is lossless)."""
    fixed = make_fullsize.tables(plan.cfg)
    want = {}
    for comp, gguf in (("vit", "vit.gguf"), ("agent", "agent.gguf"), ("llm", "llm.gguf"),
                       ("vae", "vae.gguf")):
        for _, _, specs, tag in plan.files(comp):
            for name, shape, _ in specs:
                want.setdefault(gguf, {})[name] = (tag, shape)
    n = 0
    for gguf, names in want.items():
        _, got = read_gguf(os.path.join(model, gguf))
        for name, (tag, shape) in names.items():
            if name.endswith("inv_freq"):
                assert name not in got
                continue
            vals = np.concatenate([np.frombuffer(c, "<f4") for c in
                                   make_fullsize.tensor_chunks(tag, name, shape, "float32", fixed)])
            assert np.array_equal(got[name].reshape(-1), vals), f"{gguf}: {name}"
            n += 1
    print(f"  converted tensors equal the generator's values ({n} tensors)")


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = ["# make_fullsize.py --scale tiny (official layout) and its conversion by convert.py",
             "# --pretrained --dtype bf16: bytes and sha256 of every file (fixtures_fullsize.py)"]
    with tempfile.TemporaryDirectory() as tmp:
        check_formats(tmp)
        pre = os.path.join(tmp, "pretrained")
        make_fullsize.main([pre, "--scale", "tiny"])
        make_fullsize.main([pre, "--scale", "tiny", "--variant", "seed-x-edit", "--components", "agent,llm"])
        make_fullsize.main([pre, "--scale", "tiny", "--check"])
        make_fullsize.main([pre, "--scale", "tiny", "--variant", "seed-x-edit", "--components", "agent,llm",
                            "--check"])
        for d, _, files in sorted(os.walk(pre)):
            for f in sorted(files):
                p = os.path.join(d, f)
                lines.append(f"{os.path.relpath(p, pre)} {os.path.getsize(p)} {sha(p)}")
        plan = make_fullsize.Plan(make_fullsize.Config("tiny"), "seed-x-i")
        flags = make_fullsize.convert_flags(plan.cfg)
        for variant in ("seed-x-i", "seed-x-edit"):
            model = os.path.join(tmp, variant)
            run([sys.executable, os.path.join(HERE, "convert.py"), "--pretrained", pre, "--variant", variant,
                 "--out", model, "--dtype", "bf16"] + flags)
            for f in sorted(os.listdir(model)):
                p = os.path.join(model, f)
                lines.append(f"converted/{variant}/{f} {os.path.getsize(p)} {sha(p)}")
        check_converted(os.path.join(tmp, "seed-x-i"), pre, plan)
        shutil.rmtree(os.path.join(OUT, "model"), ignore_errors=True)
        shutil.copytree(os.path.join(tmp, "seed-x-edit"), os.path.join(OUT, "model"))
        exe = os.path.join(ROOT, "seedx")
        if os.path.exists(exe):
            img = os.path.join(ROOT, "tests", "fixtures", "seedx_e2e", "img_c.png")
            m_i, m_e = os.path.join(tmp, "seed-x-i"), os.path.join(tmp, "seed-x-edit")
            o = lambda n: os.path.join(tmp, n)  # noqa: E731
            small = ["--size", "64x64", "--steps", "2", "-q"]
            run([exe, "chat", "-m", m_i, "--image", img, "-p", "Describe it.", "-n", "8", "-q"])
            run([exe, "ground", "-m", m_i, "--image", img, "-p", "Where?", "-n", "8", "-o", o("g.png"), "-q"])
            run([exe, "generate", "-m", m_i, "-p", "a cat", "--force-image", "-o", o("t2i.png")] + small)
            run([exe, "edit", "-m", m_e, "--image", img, "-p", "make it red", "--force-image",
                 "-o", o("edit.png")] + small)
            run([exe, "reconstruct", "-m", m_e, "--image", img, "-o", o("r.png")] + small)
            run([exe, "reconstruct", "-m", m_e, "--image", img, "--condition", img, "-o", o("rc.png")] + small)
            for n in ("g.png", "t2i.png", "edit.png", "r.png", "rc.png"):
                assert os.path.getsize(o(n)) > 0, n
            print("  ./seedx chat, ground, generate, edit, reconstruct (+condition) ran on the converted models")
        else:
            print("  ./seedx not built: the modes were not run (make first)")
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.join(OUT, 'manifest.txt')}: {len(lines) - 2} files")


if __name__ == "__main__":
    main()
