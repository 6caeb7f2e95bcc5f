"""The Flask API (``create_app``) and the ``kgrec`` command line."""
