"""distill.prompting"""
