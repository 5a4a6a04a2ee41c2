"""A stand-in for Colab's ``google.colab`` module, for the Colab-like test run.

Only its presence in ``sys.modules`` matters: the notebooks' first cell checks
``"google.colab" in sys.modules`` to decide whether to install flowlib.
"""

IS_STUB = True
