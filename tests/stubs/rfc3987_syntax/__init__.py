"""A stand-in for rfc3987_syntax in the test suite's processes (tests/conftest.py puts this
folder first on their path): importing it raises ImportError, which jsonschema takes as "not
installed", leaving its optional "iri" format unchecked. The real package builds its grammar
parsers at import, about 2.7 s in every process that imports mistral_common (through
jsonschema), and nothing in the suite validates an IRI."""
raise ImportError("rfc3987_syntax is left out of minipixtral's test processes (tests/stubs/)")
