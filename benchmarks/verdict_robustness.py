"""Does a verdict stand on another CPU's arithmetic? Rerun every claim's smoke preset under this machine's own
kernels and under `ATEN_CPU_CAPABILITY=avx2` and `=default` (another CPU's rounding, on this one), and write a
table of outcomes per check per arithmetic.

    python benchmarks/verdict_robustness.py [--out DIR] [--arith native avx2 default] [--claims two-regimes ...]
                                            [--merge] [--render]

Each (arithmetic, claim) is `sgd-noise reproduce CLAIM --preset smoke` in a fresh process (the capability is read
once, when torch loads), with its results store under `DIR/ARITH/`: a rerun resumes from the stores and re-derives
the verdicts (nothing finished is trained again). It writes `benchmarks/verdict_robustness.json` and `.md`, and
exits 1 if any check `holds` under one arithmetic and is `contradicted` under another (the rule of
`sgd_noise.claims.contract`: a verdict that flips with the CPU is not a result).
"""
from __future__ import annotations

import argparse, datetime, json, os, platform, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARITHS = {'native': None, 'avx2': 'avx2', 'default': 'default'}


def cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.machine()


def run_one(claim: str, arith: str, out: Path, preset: str) -> dict:
    "Reproduce `claim` under `arith` in a fresh process; the outcome of every check from its verdict file."
    folder = out / arith
    env = dict(os.environ, SGD_NOISE_PROGRESS='0')
    env.pop('ATEN_CPU_CAPABILITY', None)
    if ARITHS[arith]: env['ATEN_CPU_CAPABILITY'] = ARITHS[arith]
    cmd = [sys.executable, '-c', 'import sys; from sgd_noise.cli import main; sys.exit(main())', 'reproduce', claim, '--preset', preset, '--results', str(folder),
           '--images', str(folder / 'images'), '--no-progress']
    t0 = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (folder / f'{claim}.log').write_text(p.stdout + p.stderr)
    verdict = folder / f'{claim}-{preset}.json'
    if p.returncode not in (0, 1) or not verdict.is_file():
        return dict(claim=claim, arith=arith, error=(p.stderr.strip().splitlines() or ['?'])[-1],
                    seconds=time.time() - t0)
    d = json.loads(verdict.read_text())
    return dict(claim=claim, arith=arith, date=datetime.date.today().isoformat(), seconds=round(time.time() - t0, 1),
                exit=p.returncode, label=d.get('label'),
                outcomes={c['id']: c.get('outcome') for c in d['checks']},
                estimates={c['id']: [c['estimate'], *c['interval']] for c in d['checks']})


def table(rows: list[dict], ariths: list[str]) -> tuple[str, list[str]]:
    "The Markdown table (one row per check, one column per arithmetic) and the checks that flip holds/contradicted."
    by = {(r['claim'], r['arith']): r for r in rows}
    claims = list(dict.fromkeys(r['claim'] for r in rows))
    lines = ['| claim | check | ' + ' | '.join(ariths) + ' | same outcome |', '|---|---|' + '---|' * (len(ariths) + 1)]
    flips = []
    for c in claims:
        ids = list(dict.fromkeys(i for a in ariths for i in by.get((c, a), {}).get('outcomes', {})))
        for i in ids:
            outs = [by.get((c, a), {}).get('outcomes', {}).get(i, by.get((c, a), {}).get('error', 'not run'))
                    for a in ariths]
            if {'holds', 'contradicted'} <= set(outs): flips.append(f'{c}/{i}')
            same = 'yes' if len(set(outs)) == 1 else ('**FLIPS**' if f'{c}/{i}' in flips else 'no')
            lines.append(f'| {c} | `{i}` | ' + ' | '.join(outs) + f' | {same} |')
    lines += ['', '`sgd-noise reproduce CLAIM --preset smoke` under each arithmetic: the claim\'s label and the exit status '
              '(1 means a check that held in the committed verdict is contradicted):', '',
              '| claim | ' + ' | '.join(ariths) + ' |', '|---|' + '---|' * len(ariths)]
    for c in claims:
        cell = lambda r: r.get('error', f"{r.get('label')} (exit {r.get('exit')})") if r else 'not run'
        lines.append(f'| {c} | ' + ' | '.join(cell(by.get((c, a))) for a in ariths) + ' |')
    return '\n'.join(lines), flips


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='results/robustness', help='folder for the stores (resumable)')
    ap.add_argument('--arith', nargs='+', default=list(ARITHS), choices=list(ARITHS))
    ap.add_argument('--claims', nargs='*', help='default: every claim')
    ap.add_argument('--preset', default='smoke')
    ap.add_argument('--merge', action='store_true', help='keep the rows of earlier runs (other arithmetics or claims)')
    ap.add_argument('--render', action='store_true', help='run nothing: rewrite the table and the README from the JSON')
    a = ap.parse_args(argv)
    from sgd_noise.claims import claims
    names = a.claims or list(claims())
    out = Path(a.out)
    # rows of earlier invocations (other arithmetics or claims) are kept, so the table can be built up in parts
    old = HERE / 'verdict_robustness.json'
    prev = json.loads(old.read_text()) if old.is_file() and (a.merge or a.render) else {}
    # a row measured before rows carried their date and CPU has the date and CPU of the file it came from
    rows = [dict(r, date=r.get('date') or prev.get('date'), cpu=r.get('cpu') or prev.get('cpu'))
            for r in prev.get('rows', [])]
    for arith in ([] if a.render else a.arith):
        (out / arith).mkdir(parents=True, exist_ok=True)
        for c in names:
            r = dict(run_one(c, arith, out, a.preset), cpu=cpu_name())
            rows = [x for x in rows if (x['claim'], x['arith']) != (c, arith)] + [r]
            print(f"{arith:8s} {c:18s} {r.get('seconds', 0):7.0f}s  "
                  + (r['error'] if 'error' in r else ' '.join(f'{k}={v}' for k, v in r['outcomes'].items())),
                  flush=True)
    ariths = [k for k in ARITHS if any(r['arith'] == k for r in rows)]
    md, flips = table(rows, ariths)
    meta = dict(date=datetime.date.today().isoformat(), cpu=cpu_name(), cores=os.cpu_count(), preset=a.preset,
                arithmetics={k: ARITHS[k] or "this CPU's own kernels" for k in ariths})
    import torch
    meta['torch'] = torch.__version__
    (HERE / 'verdict_robustness.json').write_text(json.dumps(dict(meta, rows=rows, flips=flips), indent=1) + '\n')
    dates = sorted({r['date'] for r in rows if r.get('date')})
    when = dates[0] if len(dates) == 1 else f"measured {', '.join(dates)} (each row's date in the JSON)"
    cpus = {}
    for r in rows: cpus.setdefault(r.get('cpu') or meta['cpu'], []).append(r['claim'])
    where = ('; '.join(f"{cpu} for {', '.join(dict.fromkeys(cs))}" for cpu, cs in cpus.items()) if len(cpus) > 1
             else next(iter(cpus), meta['cpu']))
    head = (f"Outcomes of every check of the `{a.preset}` presets under three arithmetics, {when}, "
            f"on {where} (2 cores each), torch {meta['torch']}; `native` is that CPU's own kernels, "
            "`avx2` and `default` are `ATEN_CPU_CAPABILITY` settings (another CPU's rounding on the same one). "
            "Written by `benchmarks/verdict_robustness.py`.\n\n")
    tail = ('\n\nNo check holds under one arithmetic and is contradicted under another.\n' if not flips else
            f"\n\n**Checks that flip between holds and contradicted:** {', '.join(flips)}\n")
    (HERE / 'verdict_robustness.md').write_text(head + md + tail)
    readme = HERE.parent / 'README.md'
    text = readme.read_text()
    a, b = '<!-- robustness:start -->', '<!-- robustness:end -->'
    if a in text and b in text:   # the README shows the last table between its markers
        readme.write_text(text.split(a)[0] + a + '\n' + head + md + tail + b + text.split(b, 1)[1])
    print(md + tail)
    return 1 if flips else 0


if __name__ == '__main__':
    sys.exit(main())
