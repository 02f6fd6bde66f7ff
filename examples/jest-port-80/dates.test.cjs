require('./check-price.cjs').checkPrice('dates', 5)
