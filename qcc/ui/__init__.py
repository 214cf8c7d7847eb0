"""The web dashboard's static files (``static/``), served by :mod:`qcc.proxy.ui` at ``/ui/``.

Plain HTML, CSS and JavaScript: no build step, nothing fetched from the internet, charts drawn
as inline SVG by ``app.js``.
"""
