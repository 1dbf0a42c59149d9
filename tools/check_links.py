"""Check a built docs site offline: every relative link and anchor resolves, and no page loads anything from another host.

Usage: `python tools/check_links.py [SITE]` (default `docs/`); prints each problem and exits 1 if there is one.
Links *to* other hosts (`<a href="https://…">`) are fine: a reader may follow them. What a page *loads* by
itself (scripts, style sheets, images, fonts, frames) must come from the site.
"""
import argparse, sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOADS = {('script', 'src'), ('link', 'href'), ('img', 'src'), ('iframe', 'src'), ('source', 'src'), ('video', 'src'), ('audio', 'src')}


class PageLinks(HTMLParser):
    "The ids a page defines, the links it makes and the resources it loads."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.loads = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ('id', 'name'):
            if attrs.get(key): self.ids.add(attrs[key])
        if tag == 'a' and attrs.get('href'): self.links.append(attrs['href'])
        for t, key in LOADS:
            if tag == t and attrs.get(key) and not (tag == 'link' and attrs.get('rel') in ('canonical',)): self.loads.append(attrs[key])


def parse(path:Path) -> PageLinks:
    page = PageLinks()
    page.feed(path.read_text(errors='replace'))
    return page


def check_site(site:Path) -> list:
    "Every problem found in the site's HTML pages, as `page: what`."
    site = Path(site).resolve()
    pages = {p: parse(p) for p in sorted(site.rglob('*.html'))}
    problems = []
    def target(page:Path, url:str):
        parts = urlsplit(url)
        if parts.scheme or parts.netloc: return None, None
        if not parts.path: path = page
        elif parts.path.startswith('/'): path = (site/unquote(parts.path).lstrip('/')).resolve()  # from the site's root, as a server reads it
        else: path = (page.parent/unquote(parts.path)).resolve()
        if path.is_dir(): path = path/'index.html'
        return path, unquote(parts.fragment)
    for page, links in pages.items():
        name = page.relative_to(site)
        for url in links.loads:
            parts = urlsplit(url)
            if parts.scheme in ('http', 'https') or url.startswith('//'): problems.append(f"{name}: loads {url} from another host")
            elif not parts.scheme:
                path, _ = target(page, url)
                if not path.exists(): problems.append(f"{name}: loads {url}, which is not in the site")
        for url in links.links:
            if urlsplit(url).scheme in ('mailto', 'javascript', 'data'): continue
            path, fragment = target(page, url)
            if path is None: continue  # a link to another host: the reader's choice
            if not path.exists(): problems.append(f"{name}: links to {url}, which is not in the site"); continue
            if fragment and path.suffix == '.html' and fragment not in (pages.get(path) or parse(path)).ids:
                problems.append(f"{name}: links to {url}, but {path.relative_to(site)} has no anchor #{fragment}")
    return problems


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('site', nargs='?', default=str(Path(__file__).resolve().parents[1]/'docs'), help='the built site (default: docs/)')
    found = check_site(Path(parser.parse_args().site))
    print('\n'.join(found) if found else 'no broken link or anchor, and nothing loaded from another host')
    sys.exit(1 if found else 0)
