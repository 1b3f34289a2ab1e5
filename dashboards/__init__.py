"""Plotly views of campaigns: figure builders, the Dash app and the HTML report."""
