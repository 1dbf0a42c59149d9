"""One call that checks the library on a device: `python tools/device_check.py [--device cuda] [--out FOLDER]`.

It runs the `gpu`-marked tests on the device (`tests/test_gpu.py`), then the benchmarks with that device
(shadow updates against the authors' one-at-a-time loop, per-sample gradients, reference models, a CBM-GAN
epoch at the paper's width, MI-FACE per face when the AT&T faces are present), and writes every figure to one JSON file (`device_check.json`).
On a GPU it runs the benchmarks at their default sizes, within about 8 minutes; `--device cpu` is a dry run at
small sizes that the default test run executes (`tests/test_device.py`), so that the script cannot rot.
"""
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_gpu_tests(device:str) -> dict:
    "The `gpu`-marked tests on `device`: their exit status, counts and seconds."
    env = {**os.environ, 'UPDATES_LEAK_TEST_DEVICE': device}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-n', '0', '-m', 'gpu', str(REPO/'tests'/'test_gpu.py')],
                          cwd=REPO, env=env, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or [''])[-1]
    return {'returncode': done.returncode, 'summary': summary, 'seconds': round(time.perf_counter() - start, 1)}


def run_benchmarks(device:str, dry:bool) -> dict:
    "Each benchmark's rows, or why it was skipped."
    from updates_leak.data import MissingDataError
    from updates_leak.inversion_faces import bench_face_inversion
    from updates_leak.membership_features import bench_per_sample_gradients
    from updates_leak.membership_lira import bench_reference_models
    from updates_leak.updates import bench_shadow_updates
    from updates_leak.updates_msr import bench_cbm_gan
    benches = {
        'shadow-updates': lambda: [bench_shadow_updates(n_updates=20 if dry else 500, device=device)],
        'per-sample-gradients': lambda: bench_per_sample_gradients(n=16 if dry else 512, repeats=1 if dry else 3, device=device),
        'reference-models': lambda: bench_reference_models(n_models=2 if dry else 16, epochs=1 if dry else 20, pool=100 if dry else 1000, device=device),
        'cbm-gan': lambda: bench_cbm_gan(n_sets=8 if dry else 400, set_size=10 if dry else 100, hidden=(64,) * 3 if dry else (2048,) * 3, device=device),
        'face-inversion': lambda: bench_face_inversion(models=('softmax',), device=device) if not dry else [],
    }
    out = {}
    for name, bench in benches.items():
        start = time.perf_counter()
        try: out[name] = {'rows': bench(), 'seconds': round(time.perf_counter() - start, 1)}
        except MissingDataError as e: out[name] = {'skipped': str(e).splitlines()[0]}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help="'cuda' (default) or 'cpu' (a dry run at small sizes)")
    parser.add_argument('--out', default='device-check', help='folder for device_check.json')
    args = parser.parse_args(argv)
    import torch
    if args.device.startswith('cuda') and not torch.cuda.is_available(): sys.exit("device_check: no CUDA device here; use --device cpu for a dry run")
    dry = args.device == 'cpu'
    report = {'device': args.device, 'dry_run': dry, 'torch': torch.__version__, 'python': platform.python_version(),
              'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() and not dry else None}
    start = time.perf_counter()
    report['tests'] = run_gpu_tests(args.device)
    report['benchmarks'] = run_benchmarks(args.device, dry)
    report['seconds'] = round(time.perf_counter() - start, 1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out)/'device_check.json'
    path.write_text(json.dumps(report, indent=1, default=str))
    print(f"{report['tests']['summary']}; benchmarks: {', '.join(report['benchmarks'])}; {report['seconds']} s; wrote {path}")
    return 0 if report['tests']['returncode'] == 0 else 1


if __name__ == '__main__': sys.exit(main())
