"""Development tools of the checkout (not installed): the docs generators."""
