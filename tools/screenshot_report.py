"""Screenshot an audit report with headless Chromium: `python tools/screenshot_report.py REPORT.html OUT.png [--height H]`.

Needs a Chromium or Chrome binary (Debian: `apt-get install chromium`). The page is rendered offline from the file
itself; the screenshot is its top `--height` pixels at 1,100 pixels wide.
"""
import argparse, shutil, subprocess, sys, tempfile
from pathlib import Path

def screenshot(url:str, # the page, e.g. a `file://` URI
               out:Path, # the PNG to write
               height:int=1500, width:int=1100, # the window, in pixels
               wait_ms:int=0, # virtual time for the page's scripts to run first (math, search)
              ) -> Path:
    "A headless Chromium screenshot of the top of `url`."
    browser = next((b for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)
    if browser is None: sys.exit('no Chromium found: apt-get install chromium')
    wait = [f'--virtual-time-budget={wait_ms}'] if wait_ms else []
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', f'--user-data-dir={profile}', *wait,
                        f'--window-size={width},{height}', f'--screenshot={Path(out).resolve()}', url],
                       check=True, capture_output=True, timeout=120)
    return Path(out)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('report', type=Path); p.add_argument('out', type=Path)
    p.add_argument('--height', type=int, default=1500)
    a = p.parse_args()
    print('wrote', screenshot(a.report.resolve().as_uri(), a.out, a.height))

if __name__ == '__main__': main()
