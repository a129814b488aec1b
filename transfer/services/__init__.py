"""The transfer app's services: exporting conversations (``export``), importing them
(``importer``) and the limits an import obeys (``limits``)."""
