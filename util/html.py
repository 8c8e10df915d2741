"""A tiny image gallery page (`<web_dir>/index.html` + `<web_dir>/images/`), built with dominate.

Used by the training visualizer (one row per epoch) and by test.py (one row per test image).
The markup follows the original CUT/CycleGAN page so existing habits and scrapers keep working.
"""
import os

import dominate
from dominate.tags import a, br, h3, img, meta, p, table, td, tr

from util.util import atomic_write, mkdirs


class HTML:
    """An HTML page of headers and rows of linked images; call save() to write index.html."""

    def __init__(self, web_dir, title, refresh=0):
        """Create `web_dir` and `web_dir/images`; `refresh` > 0 adds a meta refresh (seconds)."""
        self.title = title
        self.web_dir = web_dir
        self.img_dir = os.path.join(web_dir, "images")
        mkdirs([self.web_dir, self.img_dir])
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                meta(http_equiv="refresh", content=str(refresh))

    def get_image_dir(self):
        """The folder the images of this page must be saved in."""
        return self.img_dir

    def add_header(self, text):
        """Append an <h3> header."""
        with self.doc:
            h3(text)

    def add_images(self, ims, txts, links, width=400):
        """Append one table row: image `ims[i]` (relative to images/), caption `txts[i]`,
        linking to `links[i]` (also relative to images/), shown `width` pixels wide."""
        if not len(ims) == len(txts) == len(links):
            raise ValueError("add_images: ims, txts and links must have the same length")
        row_table = table(border=1, style="table-layout: fixed;")
        self.doc.add(row_table)
        with row_table:
            with tr():
                for im, txt, link in zip(ims, txts, links):
                    with td(style="word-wrap: break-word;", halign="center", valign="top"):
                        with p():
                            # URLs always use '/', whatever the OS path separator is.
                            with a(href=f"images/{link}"):
                                img(style=f"width:{width}px", src=f"images/{im}")
                            br()
                            p(txt)

    def save(self):
        """Write `<web_dir>/index.html` atomically (a browser refreshing never sees half a page)."""
        with atomic_write(os.path.join(self.web_dir, "index.html"), "w", encoding="utf-8") as f:
            f.write(self.doc.render())
