"""HTML for the local site, with books.toscrape.com's URL scheme and DOM structure.

Links are relative, computed from each page's own depth, exactly as the real site writes them
(``catalogue/x_1/index.html`` from the home page, ``x_1/index.html`` from ``catalogue/page-2.html``,
``../../../x_1/index.html`` from a category page). Rendering is plain string building: the server must
never be the bottleneck when a crawler is benchmarked against it.
"""

from __future__ import annotations

import posixpath
from functools import lru_cache
from html import escape

from .catalog import BOOKS_PER_PAGE, RATING_WORDS, Book, Catalog, Category, rendered_description

_HEAD = """<!DOCTYPE html>
<!--[if lt IE 7]>      <html lang="en-us" class="no-js lt-ie9 lt-ie8 lt-ie7"> <![endif]-->
<!--[if IE 7]>         <html lang="en-us" class="no-js lt-ie9 lt-ie8"> <![endif]-->
<!--[if IE 8]>         <html lang="en-us" class="no-js lt-ie9"> <![endif]-->
<!--[if gt IE 8]><!--> <html lang="en-us" class="no-js"> <!--<![endif]-->
    <head>
        <title>
    {title} | Books to Scrape - Sandbox
</title>
        <meta http-equiv="content-type" content="text/html; charset=UTF-8" />
        <meta name="created" content="24th Jun 2016 09:29" />
        <meta name="description" content="" />
        <meta name="viewport" content="width=device-width" />
        <meta name="robots" content="NOARCHIVE,NOCACHE" />
        <link rel="shortcut icon" href="{up}static/oscar/favicon.ico" />
        <link rel="stylesheet" type="text/css" href="{up}static/oscar/css/styles.css" />
    </head>
    <body id="default" class="default">
        <header class="header container-fluid">
            <div class="page_inner">
                <div class="row">
                    <div class="col-sm-8 h1"><a href="{up}index.html">Books to Scrape</a><small> We love being scraped!</small>
</div>
                </div>
            </div>
        </header>
        <div class="container-fluid page">
            <div class="page_inner">
"""

_FOOT = """            </div>
        </div>
        <footer class="footer container-fluid">
        </footer>
        <script src="{up}static/oscar/js/oscar/ui.js" type="text/javascript" charset="utf-8"></script>
    </body>
</html>
"""

_WARNING = ('<div class="alert alert-warning" role="alert"><strong>Warning!</strong> This is a local '
            "practice copy for scraping tests. Prices and ratings are synthetic.</div>")

_STARS = "".join("\n        <i class=\"icon-star\"></i>" for _ in range(5))


@lru_cache(maxsize=1024)
def _rel(target: str, page_dir: str) -> str:
    """Relative link from a page in ``page_dir`` to the root-relative ``target``."""
    rel = posixpath.relpath(target, page_dir or ".")
    return rel + "/" if target.endswith("/") and not rel.endswith("/") else rel


def _up(page_dir: str) -> str:
    return "../" * (page_dir.count("/") + 1) if page_dir else ""


def _stock(book: Book, with_count: bool) -> tuple[str, str]:
    if book.availability:
        text = f"In stock ({book.availability} available)" if with_count else "In stock"
        return "instock", f'<i class="icon-ok"></i>\n    \n        {text}\n    '
    return "outofstock", '<i class="icon-remove"></i>\n    \n        Out of stock\n    '


def _truncate_words(title: str, words: int = 4) -> str:
    parts = title.split()
    return title if len(parts) <= words else " ".join(parts[:words]) + " ..."


def _sidebar(catalog: Catalog, page_dir: str) -> str:
    items = "".join(
        f"""
                        <li>
                            <a href="{_rel(cat.path + 'index.html', page_dir)}">
                                {escape(cat.name)}
                            </a>
                        </li>"""
        for cat in catalog.categories
    )
    return f"""
    <div class="side_categories">
        <ul class="nav nav-list">
                <li>
                    <a href="{_rel('catalogue/category/books_1/index.html', page_dir)}">
                            Books
                    </a>
                    <ul>{items}
                    </ul>
                </li>
        </ul>
    </div>"""


def _pod(book: Book, page_dir: str) -> str:
    href = _rel(book.path, page_dir)
    title = escape(book.title)
    css, stock = _stock(book, with_count=False)
    return f"""
                                <li class="col-xs-6 col-sm-4 col-md-3 col-lg-3">
    <article class="product_pod">
            <div class="image_container">
                    <a href="{href}"><img src="{_rel(book.image_path, page_dir)}" alt="{title}" class="thumbnail"></a>
            </div>
                <p class="star-rating {RATING_WORDS[book.rating - 1]}">{_STARS}
                </p>
            <h3><a href="{href}" title="{title}">{escape(_truncate_words(book.title))}</a></h3>
            <div class="product_price">
        <p class="price_color">£{book.price_incl_tax}</p>
<p class="{css} availability">
    {stock}
</p>
    <form>
        <button type="submit" class="btn btn-primary btn-block" data-loading-text="Adding...">Add to basket</button>
    </form>
            </div>
    </article>
</li>"""


def listing_page(catalog: Catalog, page_path: str, heading: str, indices: list[int], page: int,
                 page_link: str) -> str:
    """A listing page: ``indices`` are all books of the listing, ``page`` is 1-based.

    ``page_link`` formats a page number into the pager's relative href (``page-{n}.html``).
    """
    page_dir = posixpath.dirname(page_path)
    total = len(indices)
    pages = max(1, -(-total // BOOKS_PER_PAGE))
    start = (page - 1) * BOOKS_PER_PAGE
    shown = indices[start:start + BOOKS_PER_PAGE]
    pods = "".join(_pod(catalog.book(i), page_dir) for i in shown)
    pager = ""
    if pages > 1:
        prev = (f'\n                                        <li class="previous"><a href="{page_link.format(n=page - 1)}">'
                "previous</a></li>" if page > 1 else "")
        nxt = (f'\n                                        <li class="next"><a href="{page_link.format(n=page + 1)}">'
               "next</a></li>" if page < pages else "")
        pager = f"""
                            <div>
                                <ul class="pager">{prev}
                                    <li class="current">
                                        Page {page} of {pages}
                                    </li>{nxt}
                                </ul>
                            </div>"""
    up = _up(page_dir)
    crumb_home = _rel("index.html", page_dir)
    return _HEAD.format(title=escape(heading), up=up) + f"""
    <ul class="breadcrumb">
        <li>
            <a href="{crumb_home}">Home</a>
        </li>
        <li class="active">{escape(heading)}</li>
    </ul>
            <div class="row">
                <aside class="sidebar col-sm-4 col-md-3 col-lg-3">
                    <div id="promotions_left">
                    </div>{_sidebar(catalog, page_dir)}
                </aside>
                <div class="col-sm-8 col-md-9">
                <div class="page-header action">
                    <h1>{escape(heading)}</h1>
                </div>
                <div id="messages">
                </div>
                <form method="get" class="form-horizontal">
                    <div style="display:none">
                    </div>
                        <strong>{total}</strong> results - showing <strong>{start + 1}</strong> to <strong>{start + len(shown)}</strong>.
                </form>
                <section>
                    {_WARNING}
                    <div>
                        <ol class="row">{pods}
                        </ol>{pager}
                    </div>
                </section>
            </div>
            </div>
""" + _FOOT.format(up=up)


def product_page(book: Book, malformed: bool = False) -> str:
    """A product page. ``malformed`` drops the UPC row (a fault-injection knob)."""
    page_dir = posixpath.dirname(book.path)
    up = _up(page_dir)
    title = escape(book.title)
    css, stock = _stock(book, with_count=True)
    availability_text = (f"In stock ({book.availability} available)" if book.availability
                         else "Out of stock")
    description = ""
    if book.description is not None:
        description = f"""
    <div id="product_description" class="sub-header">
        <h2>Product Description</h2>
    </div>
    <p>{escape(rendered_description(book.description), quote=False)}</p>"""
    upc_row = "" if malformed else f"""
        <tr>
            <th>UPC</th><td>{book.upc}</td>
        </tr>"""
    cat: Category = book.category
    return _HEAD.format(title=title, up=up) + f"""
    <ul class="breadcrumb">
        <li>
            <a href="{up}index.html">Home</a>
        </li>
        <li>
            <a href="{_rel('catalogue/category/books_1/index.html', page_dir)}">Books</a>
        </li>
        <li>
            <a href="{_rel(cat.path + 'index.html', page_dir)}">{escape(cat.name)}</a>
        </li>
        <li class="active">{title}</li>
    </ul>
    <div id="messages">
    </div>
            <div class="content">
                <div id="promotions">
                </div>
                <div id="content_inner">
<article class="product_page"><!-- Start of product page -->
    <div class="row">
        <div class="col-sm-6">
            <div id="product_gallery" class="carousel">
                <div class="thumbnail">
                    <div class="carousel-inner">
                            <div class="item active">
                                <img src="{up}{book.image_path}" alt="{title}" />
                            </div>
                    </div>
                </div>
            </div>
        </div>
        <div class="col-sm-6 product_main">
            <h1>{title}</h1>
    <p class="price_color">£{book.price_incl_tax}</p>
<p class="{css} availability">
    {stock}
</p>
    <p class="star-rating {RATING_WORDS[book.rating - 1]}">{_STARS}
    </p>
            <hr/>
            {_WARNING}
        </div><!-- /col-sm-6 -->
    </div><!-- /row -->{description}
    <div class="sub-header">
        <h2>Product Information</h2>
    </div>
    <table class="table table-striped">{upc_row}
        <tr>
            <th>Product Type</th><td>Books</td>
        </tr>
            <tr>
                <th>Price (excl. tax)</th><td>£{book.price_excl_tax}</td>
            </tr>
                <tr>
                    <th>Price (incl. tax)</th><td>£{book.price_incl_tax}</td>
                </tr>
                <tr>
                    <th>Tax</th><td>£{book.tax}</td>
                </tr>
            <tr>
                <th>Availability</th>
                <td>{availability_text}</td>
            </tr>
            <tr>
                <th>Number of reviews</th>
                <td>{book.num_reviews}</td>
            </tr>
    </table>
    <div id="reviews" class="reviews">
    </div>
</article><!-- End of product page -->
                </div>
            </div>
""" + _FOOT.format(up=up)
