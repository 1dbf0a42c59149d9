"""Screenshot an audit report with headless Chromium: `python tools/screenshot_report.py REPORT.html OUT.png [--height H]`.

Needs a Chromium or Chrome binary (Debian: `apt-get install chromium`). The page is rendered offline from the file
itself; the screenshot is its top `--height` pixels at 1,100 pixels wide.
"""
import argparse, shutil, subprocess, sys, tempfile
from pathlib import Path

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('report', type=Path); p.add_argument('out', type=Path)
    p.add_argument('--height', type=int, default=1500)
    a = p.parse_args()
    browser = next((b for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)
    if browser is None: sys.exit('no Chromium found: apt-get install chromium')
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', f'--user-data-dir={profile}',
                        f'--window-size=1100,{a.height}', f'--screenshot={a.out.resolve()}', a.report.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    print('wrote', a.out)

if __name__ == '__main__': main()
