"""``d3dface bench``: timings and peak memory of every stage of a reconstruction.

- ``stages``: one function per measured stage (renderer, fit, Mesh-VAE, DPP step, end-to-end
  reconstruct, scaling); ``python -m d3dface.bench.stages GROUP OPTIONS_JSON`` runs one group
  in its own process and prints one JSON line (so each group's peak RSS is its own);
- ``blender_keys``: shape-key writing through bpy and the add-on's scene writer, run as a
  separate Python process (the engine never imports bpy);
- ``runner``: runs the groups in subprocesses, checks the budgets, prints the table.
"""
