"""distill: teach two small LoRA students to reason from a teacher's verified chain-of-thought.

Importing the package is cheap on purpose (no torch, no transformers): command-line
tools such as ``distill regen-correct`` must not pay for what they do not use.
"""

__version__ = "0.1.0"
