"""Model loading (production ids or local directories, ``loading``), the process's one pool
of shared embedders and generators (``pool``) and the offline smoke models (``smoke``)."""
