"""Market data: price sources (Yahoo via yfinance, embedded real data, operator CSV), their cache.

Importing this package is cheap: pandas and yfinance are imported only by the modules that need
them (the web process reads the JSON daily cache and the symbol rule, nothing heavier).
"""
